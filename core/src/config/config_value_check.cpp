// Checking one value against its KeySpec, and writing values into messages.
#include <charconv>
#include <cmath>
#include <sstream>

#include "config_impl.hpp"

namespace dfm {
namespace {

// Shortest text that reads back as the same double ("0.001", "1e-08").
std::string shortest(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::string render_float(double value) {
  std::string text = shortest(value);
  // Keep a float recognisable as one in messages: 1.0, not 1.
  if (text.find_first_of(".eni") == std::string::npos) text += ".0";
  return text;
}

std::string quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool is_integer_array(const toml::node& node) {
  const toml::array* array = node.as_array();
  return array && (array->empty() || array->is_homogeneous(toml::node_type::integer));
}

bool is_string_array(const toml::node& node) {
  const toml::array* array = node.as_array();
  return array && (array->empty() || array->is_homogeneous(toml::node_type::string));
}

bool has_type(ValueType type, const toml::node& node) {
  switch (type) {
    case ValueType::Bool: return node.is_boolean();
    case ValueType::Int: return node.is_integer();
    case ValueType::Float: return node.is_floating_point() || node.is_integer();  // int -> float is fine
    case ValueType::String: return node.is_string();
    case ValueType::IntArray: return is_integer_array(node);
    case ValueType::StringArray: return is_string_array(node);
  }
  return false;
}

// A bound as people write it: 1, 0.5.
std::string render_bound(double bound) {
  return bound == std::floor(bound) && std::fabs(bound) < 1e15 ? std::to_string(static_cast<int64_t>(bound))
                                                                : shortest(bound);
}

std::optional<std::string> number_problem(const KeySpec& spec, const toml::node& node) {
  const double value = node.is_integer() ? static_cast<double>(node.as_integer()->get()) : node.as_floating_point()->get();
  if (!std::isfinite(value)) return render_value(node) + " is not a finite number, expected " + bounds_phrase(spec);
  const bool below = spec.min && (spec.min_exclusive ? !(value > *spec.min) : !(value >= *spec.min));
  const bool above = spec.max && (spec.max_exclusive ? !(value < *spec.max) : !(value <= *spec.max));
  if (below || above) return render_value(node) + " is out of range, expected " + bounds_phrase(spec);
  return std::nullopt;
}

std::optional<std::string> choice_problem(const KeySpec& spec, const std::string& value) {
  for (const std::string& choice : spec.choices) {
    if (choice == value) return std::nullopt;
  }
  std::string message = quote(value) + " is not allowed, expected one of:";
  for (size_t i = 0; i < spec.choices.size(); ++i) message += (i ? ", " : " ") + spec.choices[i];
  const std::string near = nearest_key(value, spec.choices);
  if (!near.empty()) message += " (did you mean " + quote(near) + "?)";
  return message;
}

}  // namespace

std::string bounds_phrase(const KeySpec& spec) {
  const std::string name = split_key(spec.key).back();
  if (spec.min && spec.max) {
    return render_bound(*spec.min) + (spec.min_exclusive ? " < " : " <= ") + name +
           (spec.max_exclusive ? " < " : " <= ") + render_bound(*spec.max);
  }
  if (spec.min) return name + (spec.min_exclusive ? " > " : " >= ") + render_bound(*spec.min);
  if (spec.max) return name + (spec.max_exclusive ? " < " : " <= ") + render_bound(*spec.max);
  return "a finite number";
}

std::string to_string(ValueType type) {
  switch (type) {
    case ValueType::Bool: return "boolean";
    case ValueType::Int: return "integer";
    case ValueType::Float: return "float";
    case ValueType::String: return "string";
    case ValueType::IntArray: return "array of integers";
    case ValueType::StringArray: return "array of strings";
  }
  return "?";
}

std::string type_with_article(ValueType type) {
  const std::string name = to_string(type);
  return (type == ValueType::Int || type == ValueType::IntArray || type == ValueType::StringArray ? "an " : "a ") +
         name;
}

std::string render_value(const toml::node& node) {
  if (const auto* v = node.as_boolean()) return v->get() ? "true" : "false";
  if (const auto* v = node.as_integer()) return std::to_string(v->get());
  if (const auto* v = node.as_floating_point()) return render_float(v->get());
  if (const auto* v = node.as_string()) return quote(v->get());
  if (const auto* array = node.as_array()) {
    std::string text = "[";
    for (size_t i = 0; i < array->size(); ++i) text += (i ? ", " : "") + render_value(*array->get(i));
    return text + "]";
  }
  if (node.is_table()) return "{...}";
  std::ostringstream out;  // dates and times: toml++ writes them as TOML does
  node.visit([&](const auto& value) { out << value; });
  return out.str();
}

std::string describe_node(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::boolean: return "boolean " + render_value(node);
    case toml::node_type::integer: return "integer " + render_value(node);
    case toml::node_type::floating_point: return "float " + render_value(node);
    case toml::node_type::string: return "string " + render_value(node);
    case toml::node_type::array: return "array " + render_value(node);
    case toml::node_type::table: return "a table";
    case toml::node_type::date: return "date " + render_value(node);
    case toml::node_type::time: return "time " + render_value(node);
    case toml::node_type::date_time: return "date-time " + render_value(node);
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::optional<std::string> type_problem(const KeySpec& spec, const toml::node& node) {
  if (has_type(spec.type, node)) return std::nullopt;
  return "expected " + type_with_article(spec.type) + ", got " + describe_node(node);
}

std::optional<std::string> value_problem(const KeySpec& spec, const toml::node& node) {
  if (auto problem = type_problem(spec, node)) return problem;
  switch (spec.type) {
    case ValueType::Int:
    case ValueType::Float: return number_problem(spec, node);
    case ValueType::IntArray:
      for (size_t i = 0; i < node.as_array()->size(); ++i) {
        if (auto problem = number_problem(spec, *node.as_array()->get(i))) return "item " + std::to_string(i) + ": " + *problem;
      }
      return std::nullopt;
    case ValueType::String:
      return spec.choices.empty() ? std::nullopt : choice_problem(spec, node.as_string()->get());
    case ValueType::Bool:
    case ValueType::StringArray: return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace dfm
