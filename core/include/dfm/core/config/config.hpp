// The job configuration: a TOML file (toml++) plus --set overrides, checked
// against a schema before any work starts. Every error names the file, the
// line and column of the key, the key, what was wrong and what was expected:
//   job.toml:12:1: model.n_head: expected an integer, got string "twelve"
// docs/config.md is generated from the same schema (dfm-run --config-reference).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dfm/host.h"

namespace dfm {

enum class ValueType { Bool, Int, Float, String, IntArray, StringArray };

std::string to_string(ValueType type);

// One key of the schema. Core keys come from the built-in schema
// (config_schema.cpp); plugin keys from each plugin's dfm_option_spec table.
// Every field has an initializer, so designated initializers may leave any out.
struct KeySpec {
  std::string key{};         // dotted path, e.g. "train.lr"
  ValueType type = ValueType::Int;
  std::string default_toml{};  // TOML text of the default; empty = no default (optional key without value)
  std::string doc{};         // one line for docs/config.md
  std::optional<double> min{};  // bounds for numbers (array items too), inclusive
  std::optional<double> max{};  //   unless the matching *_exclusive flag is set
  std::vector<std::string> choices{};  // allowed values of a String key, when non-empty
  bool min_exclusive = false;  // e.g. eps > 0
  bool max_exclusive = false;  // e.g. beta1 < 1
};

// A section of the core schema with its one-line purpose, for the reference
// page and for "expected one of" in messages about unknown sections.
struct SectionSpec {
  std::string name;  // "train"
  std::string doc;
};

// Where a key came from, for messages.
struct SourcePos {
  std::string file;  // the job file, or "--set" for an override
  int line = 0;      // 0 when unknown (a default)
  int column = 0;
};

// A configuration or usage error; dfm-run exits with code 2 for these.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& message) : std::runtime_error(message) {}
};

class Config {
 public:
  // Parses `path` and applies overrides of the form "section.key=value"
  // (value in TOML syntax; a bare word is taken as a string). Throws
  // ConfigError for a file that cannot be read or parsed, or a malformed
  // override. Nothing is validated against the schema yet.
  static Config load(const std::filesystem::path& path, const std::vector<std::string>& overrides);
  // Same, from text (tests).
  static Config parse(const std::string& text, const std::string& source_name,
                      const std::vector<std::string>& overrides = {});

  // The built-in schema of every core section ([job], [model], [data],
  // [train], [backend], [strategy], [fsdp], [checkpoint], [log], [sample]).
  static const std::vector<KeySpec>& core_schema();
  // The core sections in reference order.
  static const std::vector<SectionSpec>& core_sections();

  // Adds the schema of a plugin's options table ("strategy.tp"). Keys are
  // relative to the table ("sequence_parallel"). An empty list registers a
  // table that takes no keys. Throws ConfigError for a default that is not a
  // valid TOML value of the key's type.
  void add_table_schema(const std::string& table, std::vector<KeySpec> keys);
  // Adds keys (relative to it) to a core section whose keys depend on another
  // of its keys: the [model] keys of the architecture model.arch names.
  void add_section_keys(const std::string& section, std::vector<KeySpec> keys);
  bool has_section_keys(const std::string& section) const;

  // Checks every key against the schema: unknown keys (with the nearest valid
  // key), wrong types, out-of-range values, bad choices; tables under
  // [strategy.<name>] must have a registered schema. `chain` is the resolved
  // strategy chain (layout.hpp resolve_chain): a [strategy.X] table without a
  // schema is reported as options for a plugin outside that chain. A table of
  // a plugin in the chain whose schema was not registered is skipped (the
  // caller reports that plugin as not found). Appends one message per problem
  // to `errors` (already formatted "file:line:col: key: ..."), ordered by
  // position in the file, then overrides.
  void check_schema(std::vector<std::string>& errors, const std::vector<std::string>& chain = {}) const;

  // True when the key has a value (set or default) that passes its schema
  // check. Lets planning code (resolve_layout) skip values that check_schema
  // reports anyway, instead of stacking a second error on top.
  bool is_valid(const std::string& key) const;

  // Typed access after defaults and overrides. Throws ConfigError for a key
  // the schema does not know, for a value of the wrong type in the file (the
  // formatted message check_schema gives) and for a key without value or
  // default; std::logic_error when the schema's type is not the one asked for.
  bool get_bool(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // ints convert
  std::string get_string(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  // True when the file or an override set the key (not a default).
  bool is_set(const std::string& key) const;
  // Sets `key` to `toml_value` as if an override had, when neither the file
  // nor an override set it; `origin` stands where "--set ..." would in
  // messages ("<folder>/config.json (num_attention_heads)"). Returns false,
  // changing nothing, when the key was set already. For values a job takes
  // from a file it points at (model.init_from).
  bool fill_unset(const std::string& key, const std::string& toml_value, const std::string& origin);
  // True when the schema knows the key.
  bool knows(const std::string& key) const;
  // Tables present under a prefix, e.g. tables_under("strategy") -> {"tp", "cp"}.
  std::vector<std::string> tables_under(const std::string& prefix) const;

  // For dfm_host_services::get_config. Returns false for an unknown key and
  // for a value of the wrong type (out->type is then DFM_VALUE_NONE); a known
  // key without value or default gives DFM_VALUE_NONE and true. Strings and
  // arrays are owned by the Config and keep their addresses until it is
  // destroyed. Safe to call from several threads.
  bool fill_value(const std::string& key, dfm_value* out) const;

  SourcePos where(const std::string& key) const;
  // "file:line:col: key: message" (falls back to the table's or the file's position).
  std::string format_error(const std::string& key, const std::string& message) const;

  const std::string& source_name() const;

  Config();
  ~Config();
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;

  // Opaque (core/src/config/config_impl.hpp); public only so the module's own
  // helper functions can name it.
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The candidate nearest to `wrong` in edit distance (Levenshtein with adjacent
// transpositions counting 1), when that distance is at most a third of
// wrong's length and at most 2; "" when none is that close (always for names
// under three letters). Ties go to the earlier candidate. For "did you mean".
std::string nearest_key(const std::string& wrong, const std::vector<std::string>& candidates);

// docs/config.md: every section and key of the core schema with type,
// default and meaning, and how --set and [strategy.<name>] tables work.
// `dfm-run --config-reference` prints it; a test keeps docs/config.md equal.
// Keys that join a core section when another key picks them (the [model]
// keys of one architecture), or a plugin's table of the section (the
// options of [strategy.tp]), for the reference page.
struct ReferenceTable {
  std::string section;  // "model": the table comes after that section's keys
  std::string heading;  // "[model] with arch = \"gpt\""
  std::string doc;
  std::vector<KeySpec> keys;  // relative to the table
};
// docs/config.md: every section and key of the core schema with type,
// default and meaning, and how --set and [strategy.<name>] tables work; each
// table comes right after its section's own keys. `dfm-run
// --config-reference` prints it; a test keeps docs/config.md equal.
std::string config_reference_markdown(const std::vector<ReferenceTable>& tables = {});

}  // namespace dfm
