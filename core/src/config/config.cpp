// Config: reading the job file, merging --set overrides, typed access and the
// values handed to plugins. Checking against the schema is config_check.cpp.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config_impl.hpp"

namespace dfm {
namespace {

bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// A dotted key of bare TOML names: "train.lr", "strategy.tp.sequence_parallel".
bool is_dotted_key(const std::string& key) {
  if (key.empty()) return false;
  for (const std::string& part : split_key(key)) {
    if (part.empty()) return false;
    for (char c : part) {
      if (!is_key_char(c)) return false;
    }
  }
  return true;
}

std::string trim(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// The override's value as TOML ("3e-4", "true", "[\"tp\"]", "\"x\""); text
// that is not a TOML value is taken as a bare string (--set job.name=my-run).
toml::table parse_override_value(const std::string& text) {
  try {
    toml::table doc = toml::parse("v = " + text);
    if (doc.size() == 1 && doc.contains("v")) return doc;
  } catch (const toml::parse_error&) {
  }
  toml::table doc;
  doc.insert("v", text);
  return doc;
}

// Puts `value` (the parsed document "v = ...") at dotted `key` of
// `impl.root`, creating tables on the way; `label` names where it came from.
void insert_value(Config::Impl& impl, const std::string& key, toml::table value_doc, const std::string& label) {
  const std::vector<std::string> parts = split_key(key);
  toml::table* table = &impl.root;
  std::string path;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    path = join_key(path, parts[i]);
    toml::node* node = table->get(parts[i]);
    if (!node) node = &table->insert(parts[i], toml::table{}).first->second;
    if (!node->is_table()) {
      throw ConfigError(label + ": " + path + " is " + describe_node(*node) + " (" + impl.origin(path) +
                        "), not a table, so it has no key '" + parts[i + 1] + "'");
    }
    table = node->as_table();
  }
  table->insert_or_assign(parts.back(), std::move(*value_doc.get("v")));
  // A later override of a table replaces what earlier ones set inside it.
  std::erase_if(impl.override_labels, [&](const auto& entry) { return entry.first.starts_with(key + "."); });
  impl.override_labels[key] = label;
}

// Applies one "section.key=value" to `impl.root`.
void apply_override(Config::Impl& impl, const std::string& text) {
  const std::string label = "--set " + text;
  const size_t equals = text.find('=');
  if (equals == std::string::npos) throw ConfigError(label + ": expected section.key=value");
  const std::string key = trim(text.substr(0, equals));
  if (!is_dotted_key(key)) {
    throw ConfigError(label + ": '" + key + "' is not a dotted key of letters, digits, '_' and '-', expected section.key=value");
  }
  insert_value(impl, key, parse_override_value(text.substr(equals + 1)), label);
}

std::string read_file(const std::filesystem::path& path) {
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) throw ConfigError(path.string() + ": cannot open: " + std::strerror(EISDIR));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path.string() + ": cannot open: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path.string() + ": cannot read: " + std::strerror(errno));
  return text.str();
}

}  // namespace

std::vector<std::string> split_key(const std::string& dotted) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = dotted.find('.', start);
    parts.push_back(dotted.substr(start, dot - start));
    if (dot == std::string::npos) return parts;
    start = dot + 1;
  }
}

std::string join_key(const std::string& prefix, std::string_view name) {
  return prefix.empty() ? std::string(name) : prefix + "." + std::string(name);
}

// --- Impl --------------------------------------------------------------------

Config::Impl::Impl() {
  for (const KeySpec& spec : core_schema()) add_key(spec);
}

void Config::Impl::add_key(KeySpec spec) {
  if (schema_index.count(spec.key)) throw std::logic_error("config key " + spec.key + " declared twice");
  if (!spec.default_toml.empty()) {
    toml::table doc;
    try {
      doc = toml::parse("v = " + spec.default_toml);
    } catch (const toml::parse_error& e) {
      throw ConfigError(spec.key + ": the declared default " + spec.default_toml + " is not a TOML value (" +
                        std::string(e.description()) + ")");
    }
    if (auto problem = value_problem(spec, *doc.get("v"))) {
      throw ConfigError(spec.key + ": the declared default " + spec.default_toml + " does not fit the key: " + *problem);
    }
    defaults[spec.key] = std::move(doc);
  }
  const std::vector<std::string> parts = split_key(spec.key);
  std::string table;
  for (size_t i = 0; i + 1 < parts.size(); ++i) tables.insert(table = join_key(table, parts[i]));
  schema_index[spec.key] = schema.size();
  schema.push_back(std::move(spec));
}

const KeySpec* Config::Impl::spec(const std::string& key) const {
  const auto it = schema_index.find(key);
  return it == schema_index.end() ? nullptr : &schema[it->second];
}

const toml::node* Config::Impl::set_node(const std::string& key) const {
  const toml::node* node = &root;
  for (const std::string& part : split_key(key)) {
    const toml::table* table = node->as_table();
    if (!table || !(node = table->get(part))) return nullptr;
  }
  return node;
}

const toml::node* Config::Impl::value_node(const std::string& key) const {
  if (const toml::node* node = set_node(key)) return node;
  const auto it = defaults.find(key);
  return it == defaults.end() ? nullptr : it->second.get("v");
}

std::optional<std::string> Config::Impl::override_label(const std::string& key) const {
  std::string path;
  for (const std::string& part : split_key(key)) {
    const auto it = override_labels.find(path = join_key(path, part));
    if (it != override_labels.end()) return it->second;
  }
  return std::nullopt;
}

std::string Config::Impl::origin(const std::string& key) const {
  if (auto label = override_label(key)) return *label;
  const SourcePos pos = position_in_file(key);
  if (pos.line == 0) return source_name;
  return source_name + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
}

SourcePos Config::Impl::position_in_file(const std::string& key) const {
  SourcePos pos{source_name, 0, 0};
  const toml::table* table = &root;
  for (const std::string& part : split_key(key)) {
    if (!table) break;
    const auto it = table->find(part);
    if (it == table->end()) break;
    const toml::source_position& begin = it->first.source().begin;
    if (begin.line > 0) pos = {source_name, static_cast<int>(begin.line), static_cast<int>(begin.column)};
    table = it->second.as_table();
  }
  return pos;
}

std::string Config::Impl::format(const std::string& key, const std::string& message) const {
  return origin(key) + ": " + key + ": " + message;
}

// --- Config ------------------------------------------------------------------

Config::Config() : impl_(std::make_unique<Impl>()) {}
Config::~Config() = default;
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;

Config Config::load(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
  return parse(read_file(path), path.string(), overrides);
}

Config Config::parse(const std::string& text, const std::string& source_name, const std::vector<std::string>& overrides) {
  Config config;
  config.impl_->source_name = source_name;
  try {
    config.impl_->root = toml::parse(text, std::string_view(source_name));
  } catch (const toml::parse_error& e) {
    const toml::source_position& begin = e.source().begin;
    throw ConfigError(source_name + ":" + std::to_string(begin.line) + ":" + std::to_string(begin.column) +
                      ": TOML syntax error: " + std::string(e.description()));
  }
  for (const std::string& text_of_override : overrides) apply_override(*config.impl_, text_of_override);
  return config;
}

void Config::add_table_schema(const std::string& table, std::vector<KeySpec> keys) {
  // A core section or a table registered before: the host registers each plugin once.
  if (impl_->tables.count(table)) throw std::logic_error("config table " + table + " is already in the schema");
  std::string prefix;
  for (const std::string& part : split_key(table)) impl_->tables.insert(prefix = join_key(prefix, part));
  for (KeySpec& key : keys) {
    key.key = join_key(table, key.key);
    impl_->add_key(std::move(key));
  }
}

void Config::add_section_keys(const std::string& section, std::vector<KeySpec> keys) {
  if (!impl_->tables.count(section) || !impl_->extended_sections.insert(section).second)
    throw std::logic_error("config section " + section + " is not a core section, or already has its keys");
  for (KeySpec& key : keys) {
    key.key = join_key(section, key.key);
    impl_->add_key(std::move(key));
  }
}

bool Config::has_section_keys(const std::string& section) const { return impl_->extended_sections.count(section) > 0; }

namespace {

const KeySpec& require_spec(const Config::Impl& impl, const std::string& key, std::initializer_list<ValueType> accepted) {
  const KeySpec* spec = impl.spec(key);
  if (!spec) throw ConfigError(key + ": not a configuration key");
  for (ValueType type : accepted) {
    if (spec->type == type) return *spec;
  }
  throw std::logic_error("config key " + key + " is " + type_with_article(spec->type) + ", not " +
                         type_with_article(*accepted.begin()));
}

// The key's value (set or default) after checking its type.
const toml::node& require_value(const Config::Impl& impl, const std::string& key, std::initializer_list<ValueType> accepted) {
  const KeySpec& spec = require_spec(impl, key, accepted);
  const toml::node* node = impl.value_node(key);
  if (!node) throw ConfigError(impl.format(key, "has no value and no default, expected it in the file or --set " + key + "=..."));
  if (auto problem = type_problem(spec, *node)) throw ConfigError(impl.format(key, *problem));
  return *node;
}

}  // namespace

bool Config::get_bool(const std::string& key) const {
  return require_value(*impl_, key, {ValueType::Bool}).as_boolean()->get();
}

int64_t Config::get_int(const std::string& key) const {
  return require_value(*impl_, key, {ValueType::Int}).as_integer()->get();
}

double Config::get_float(const std::string& key) const {
  const toml::node& node = require_value(*impl_, key, {ValueType::Float, ValueType::Int});
  return node.is_integer() ? static_cast<double>(node.as_integer()->get()) : node.as_floating_point()->get();
}

std::string Config::get_string(const std::string& key) const {
  return require_value(*impl_, key, {ValueType::String}).as_string()->get();
}

std::vector<int64_t> Config::get_int_array(const std::string& key) const {
  std::vector<int64_t> items;
  for (const toml::node& item : *require_value(*impl_, key, {ValueType::IntArray}).as_array()) {
    items.push_back(item.as_integer()->get());
  }
  return items;
}

std::vector<std::string> Config::get_string_array(const std::string& key) const {
  std::vector<std::string> items;
  for (const toml::node& item : *require_value(*impl_, key, {ValueType::StringArray}).as_array()) {
    items.push_back(item.as_string()->get());
  }
  return items;
}

bool Config::is_set(const std::string& key) const { return impl_->set_node(key) != nullptr; }

bool Config::knows(const std::string& key) const { return impl_->spec(key) != nullptr; }

bool Config::is_valid(const std::string& key) const {
  const KeySpec* spec = impl_->spec(key);
  const toml::node* node = spec ? impl_->value_node(key) : nullptr;
  return node && !value_problem(*spec, *node);
}

std::vector<std::string> Config::tables_under(const std::string& prefix) const {
  std::vector<std::string> names;
  const toml::node* node = prefix.empty() ? &impl_->root : impl_->set_node(prefix);
  if (const toml::table* table = node ? node->as_table() : nullptr) {
    for (const auto& [name, child] : *table) {
      if (child.is_table()) names.emplace_back(name.str());
    }
  }
  return names;
}

bool Config::fill_value(const std::string& key, dfm_value* out) const {
  const size_t struct_size = out->struct_size;  // the caller's; every field written here is in ABI 1.0
  *out = dfm_value{};
  out->struct_size = struct_size;
  out->type = DFM_VALUE_NONE;
  const KeySpec* spec = impl_->spec(key);
  if (!spec) return false;
  out->is_default = impl_->set_node(key) ? 0 : 1;
  const toml::node* node = impl_->value_node(key);
  if (!node) return true;
  if (type_problem(*spec, *node)) return false;

  std::lock_guard<std::mutex> lock(impl_->fill_mutex);
  auto [slot, first_time] = impl_->filled.try_emplace(key);
  FilledValue& owned = slot->second;
  switch (spec->type) {
    case ValueType::Bool:
      out->type = DFM_VALUE_BOOL;
      out->as_int = node->as_boolean()->get() ? 1 : 0;
      break;
    case ValueType::Int:
      out->type = DFM_VALUE_INT;
      out->as_int = node->as_integer()->get();
      out->as_float = static_cast<double>(out->as_int);
      break;
    case ValueType::Float:
      out->type = DFM_VALUE_FLOAT;
      out->as_float = node->is_integer() ? static_cast<double>(node->as_integer()->get()) : node->as_floating_point()->get();
      break;
    case ValueType::String:
      if (first_time) owned.text = node->as_string()->get();
      out->type = DFM_VALUE_STRING;
      out->as_string = owned.text.c_str();
      break;
    case ValueType::IntArray:
      if (first_time) owned.ints = get_int_array(key);
      out->type = DFM_VALUE_INT_ARRAY;
      out->int_items = owned.ints.data();
      out->item_count = owned.ints.size();
      break;
    case ValueType::StringArray:
      if (first_time) {
        owned.strings = get_string_array(key);
        for (const std::string& item : owned.strings) owned.string_pointers.push_back(item.c_str());
      }
      out->type = DFM_VALUE_STRING_ARRAY;
      out->string_items = owned.string_pointers.data();
      out->item_count = owned.string_pointers.size();
      break;
  }
  return true;
}

bool Config::fill_unset(const std::string& key, const std::string& toml_value, const std::string& origin) {
  if (impl_->set_node(key) != nullptr) return false;
  insert_value(*impl_, key, parse_override_value(toml_value), origin);
  return true;
}

SourcePos Config::where(const std::string& key) const {
  if (impl_->override_label(key)) return {"--set", 0, 0};
  return impl_->position_in_file(key);
}

std::string Config::format_error(const std::string& key, const std::string& message) const {
  return impl_->format(key, message);
}

const std::string& Config::source_name() const { return impl_->source_name; }

}  // namespace dfm
