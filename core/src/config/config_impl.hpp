// Private to the config module (config*.cpp): the state behind Config and the
// helpers its files share. Keeps toml++ out of the public header.
#pragma once

#include <toml++/toml.h>

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dfm/core/config/config.hpp"

namespace dfm {

// Storage for the strings and arrays fill_value hands to plugins.
struct FilledValue {
  std::string text;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<const char*> string_pointers;
};

struct Config::Impl {
  std::string source_name;
  toml::table root;  // the file with the overrides merged in
  std::map<std::string, std::string> override_labels;  // dotted path -> "--set a.b=v"

  std::vector<KeySpec> schema;               // core keys, then plugin tables' keys
  std::map<std::string, size_t> schema_index;  // key -> position in `schema`
  std::set<std::string> tables;              // every table that holds keys, e.g. "train", "strategy.tp"
  std::set<std::string> extended_sections;   // core sections given keys by add_section_keys
  std::map<std::string, toml::table> defaults;  // key -> the parsed document "v = <default>"

  mutable std::mutex fill_mutex;
  mutable std::map<std::string, FilledValue> filled;  // map nodes never move: stable addresses

  Impl();
  void add_key(KeySpec spec);
  const KeySpec* spec(const std::string& key) const;
  // The node the file or an override set, or nullptr.
  const toml::node* set_node(const std::string& key) const;
  // set_node, else the default's node, else nullptr.
  const toml::node* value_node(const std::string& key) const;
  // "--set a.b=v" when the key or a table above it came from an override.
  std::optional<std::string> override_label(const std::string& key) const;
  // The override's label, else "file:line:col" of position_in_file, else the
  // file name.
  std::string origin(const std::string& key) const;
  // Position of the key in the file, else of the nearest table above it that
  // the file wrote; line 0 when neither is there.
  SourcePos position_in_file(const std::string& key) const;
  // "origin: key: message".
  std::string format(const std::string& key, const std::string& message) const;
};

std::vector<std::string> split_key(const std::string& dotted);
std::string join_key(const std::string& prefix, std::string_view name);

// "an integer", "a float", "an array of strings", ...
std::string type_with_article(ValueType type);
// The value as TOML would write it: 5, 2.5, true, "abc", ["tp", 2].
std::string render_value(const toml::node& node);
// The value with its kind, for "got ...": integer 5, string "abc", a table.
std::string describe_node(const toml::node& node);
// The bounds of a number key as a condition: "n_layer >= 1", "0 <= beta1 < 1".
std::string bounds_phrase(const KeySpec& spec);
// Why the node cannot be the value of `spec`'s type, or nullopt.
std::optional<std::string> type_problem(const KeySpec& spec, const toml::node& node);
// type_problem, then non-finite floats, bounds and choices.
std::optional<std::string> value_problem(const KeySpec& spec, const toml::node& node);

}  // namespace dfm
