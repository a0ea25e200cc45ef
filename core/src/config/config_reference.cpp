// docs/config.md, rendered from the core schema (dfm-run --config-reference).
#include <sstream>

#include "config_impl.hpp"

namespace dfm {
namespace {

constexpr const char* kIntroduction = R"(# Configuration reference

<!-- Generated from core/src/config/config_schema.cpp and the option tables of the strategy plugins
     dfm-run finds, by `dfm-run --config-reference > docs/config.md`.
     tests/test_config_reference.cpp fails when this file and the schema differ: edit the schema. -->

A job is one TOML file, run with `dfm-run job.toml`. Every key has the default shown unless the
file sets it. Before any work starts, every key is checked: an unknown key or section (with the
nearest valid name when one is close), a value of the wrong type, a value out of range, or a
layout that does not fit the world size stops the job with exit code 2 and one line per problem,
all problems at once:

    job.toml:12:1: model.n_head: expected an integer, got string "twelve"
    job.toml:20:1: train.lrr: unknown key in [train] (did you mean 'train.lr'?)

An integer is accepted where a float is expected (`lr = 1` means 1.0); a float where an integer
is expected is an error.

## Overriding keys: `--set`

`dfm-run --set section.key=value job.toml` overrides any key after the file is read; repeat it
for several keys, and the last one for a key wins. The value is read as TOML:
`--set train.lr=3e-4`, `--set data.shuffle=true`, `--set 'strategy.chain=["tp", "fsdp2"]'`,
`--set 'job.name="run 2"'`. Text that is not a TOML value is taken as a string, so
`--set data.path=data/*.bin` needs no quotes. Overrides are checked exactly like the file, and
their errors name the override:

    --set train.lr=abc: train.lr: expected a float, got string "abc"

## Plugin options: `[strategy.<name>]`

Each strategy plugin declares its own options, which live in a table named after the plugin,
for example `[strategy.tp]` for the `tp` plugin. They are checked like the core keys, against the
schema the plugin declares, and then by the plugin itself. The tables of the plugins installed
with dfm follow the [strategy] section below; `dfm-run --list-plugins -v` lists the options of
every strategy plugin it finds, third-party ones included.
A table for a plugin that is not in the strategy chain is an error, because its options would
otherwise be ignored without a word:

    job.toml:9:11: strategy.cp: options for plugin 'cp', which is not in the strategy chain [tp, fsdp2]
)";

std::string default_cell(const KeySpec& spec) {
  if (spec.default_toml.empty()) return "(none)";
  return "`" + spec.default_toml + "`";
}

std::string meaning_cell(const KeySpec& spec) {
  std::string text = spec.doc;
  if (spec.min || spec.max) text += " Allowed: " + bounds_phrase(spec) + ".";
  if (!spec.choices.empty()) {
    text += " One of:";
    for (size_t i = 0; i < spec.choices.size(); ++i) text += (i ? ", `" : " `") + spec.choices[i] + "`";
    text += ".";
  }
  return text;
}

}  // namespace

std::string config_reference_markdown(const std::vector<ReferenceTable>& tables) {
  std::ostringstream out;
  out << kIntroduction;
  for (const SectionSpec& section : Config::core_sections()) {
    out << "\n## [" << section.name << "]\n\n" << section.doc << "\n\n";
    out << "| Key | Type | Default | Meaning |\n";
    out << "|-----|------|---------|---------|\n";
    for (const KeySpec& spec : Config::core_schema()) {
      if (!spec.key.starts_with(section.name + ".")) continue;
      out << "| `" << spec.key.substr(section.name.size() + 1) << "` | " << to_string(spec.type) << " | "
          << default_cell(spec) << " | " << meaning_cell(spec) << " |\n";
    }
    for (const ReferenceTable& table : tables) {
      if (table.section != section.name) continue;
      out << "\n### " << table.heading << "\n\n" << table.doc << "\n\n";
      out << "| Key | Type | Default | Meaning |\n";
      out << "|-----|------|---------|---------|\n";
      for (const KeySpec& spec : table.keys)
        out << "| `" << spec.key << "` | " << to_string(spec.type) << " | " << default_cell(spec) << " | "
            << meaning_cell(spec) << " |\n";
    }
  }
  return out.str();
}

}  // namespace dfm
