// Config::check_schema: walks every key of the file and the overrides and
// collects one message per problem, so a user fixes them all in one go.
#include <algorithm>
#include <tuple>

#include "config_impl.hpp"

namespace dfm {
namespace {

struct Problem {
  int group;  // 0: at a position in the file, 1: from an override, 2: no position
  int line;
  int column;
  std::string text;
};

std::string did_you_mean(const std::string& suggestion) {
  return suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)";
}

std::string bracketed_list(const std::vector<std::string>& names) {
  std::string text = "[";
  for (size_t i = 0; i < names.size(); ++i) text += (i ? ", " : "") + names[i];
  return text + "]";
}

class SchemaWalk {
 public:
  SchemaWalk(const Config::Impl& impl, const std::vector<std::string>& chain) : impl_(impl), chain_(chain) {}

  void walk(const toml::table& table, const std::string& prefix) {
    for (const auto& [name, node] : table) {
      const std::string key = join_key(prefix, name.str());
      if (const KeySpec* spec = impl_.spec(key)) {
        if (auto problem = value_problem(*spec, node)) add(key, *problem);
      } else if (impl_.tables.count(key)) {
        if (const toml::table* child = node.as_table()) {
          walk(*child, key);
        } else {
          add(key, "expected a table, got " + describe_node(node));
        }
      } else if (prefix == "strategy" && node.is_table()) {
        check_plugin_table(key, std::string(name.str()));
      } else if (prefix.empty() && node.is_table()) {
        add(key, unknown_section(key));
      } else {
        add(key, unknown_key(key, prefix));
      }
    }
  }

  std::vector<std::string> messages() {
    std::stable_sort(problems_.begin(), problems_.end(), [](const Problem& a, const Problem& b) {
      return std::tie(a.group, a.line, a.column) < std::tie(b.group, b.line, b.column);
    });
    std::vector<std::string> texts;
    for (Problem& problem : problems_) texts.push_back(std::move(problem.text));
    return texts;
  }

 private:
  void add(const std::string& key, const std::string& message) {
    const SourcePos pos = impl_.position_in_file(key);
    const int group = impl_.override_label(key) ? 1 : pos.line > 0 ? 0 : 2;
    problems_.push_back({group, pos.line, pos.column, impl_.format(key, message)});
  }

  // A [strategy.X] table without a registered schema.
  void check_plugin_table(const std::string& key, const std::string& plugin) {
    // In the chain but unregistered: the plugin was not found, which the
    // caller reports; its options cannot be checked without it.
    if (std::find(chain_.begin(), chain_.end(), plugin) != chain_.end()) return;
    add(key, "options for plugin '" + plugin + "', which is not in the strategy chain " + bracketed_list(chain_) +
                 did_you_mean(nearest_key(plugin, chain_)));
  }

  std::string unknown_section(const std::string& name) const {
    std::vector<std::string> sections;
    for (const SectionSpec& section : Config::core_sections()) sections.push_back(section.name);
    const std::string near = nearest_key(name, sections);
    if (!near.empty()) return "unknown section" + did_you_mean(near);
    std::string message = "unknown section, expected one of:";
    for (size_t i = 0; i < sections.size(); ++i) message += (i ? ", " : " ") + sections[i];
    return message;
  }

  std::string unknown_key(const std::string& key, const std::string& table) const {
    const std::string where = table.empty() ? "at the top level" : "in [" + table + "]";
    const std::string near = suggest_key(key);
    if (!near.empty()) return "unknown key " + where + did_you_mean(near);
    if (table.empty()) return "unknown key " + where + ", expected a key inside a section such as [train]";
    std::vector<std::string> names;
    for (const KeySpec& spec : impl_.schema) {
      if (spec.key.starts_with(table + ".") && spec.key.find('.', table.size() + 1) == std::string::npos) {
        names.push_back(spec.key.substr(table.size() + 1));
      }
    }
    if (names.empty()) return "unknown key " + where + ", which takes no keys";
    std::string message = "unknown key " + where + ", expected one of:";
    for (size_t i = 0; i < names.size(); ++i) message += (i ? ", " : " ") + names[i];
    return message;
  }

  // The nearest key by spelling, else a key of the same name in another
  // section ("[model] lr" -> "train.lr").
  std::string suggest_key(const std::string& key) const {
    std::vector<std::string> keys;
    for (const KeySpec& spec : impl_.schema) keys.push_back(spec.key);
    const std::string near = nearest_key(key, keys);
    if (!near.empty()) return near;
    const std::string name = split_key(key).back();
    for (const std::string& candidate : keys) {
      if (split_key(candidate).back() == name) return candidate;
    }
    return "";
  }

  const Config::Impl& impl_;
  const std::vector<std::string>& chain_;
  std::vector<Problem> problems_;
};

}  // namespace

void Config::check_schema(std::vector<std::string>& errors, const std::vector<std::string>& chain) const {
  SchemaWalk walk(*impl_, chain);
  walk.walk(impl_->root, "");
  for (std::string& message : walk.messages()) errors.push_back(std::move(message));
}

}  // namespace dfm
