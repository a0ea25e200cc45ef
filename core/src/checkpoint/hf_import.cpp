#include "dfm/core/checkpoint/hf_import.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace dfm {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": cannot open: " + std::strerror(errno));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path.string() + ": not JSON: " + e.what());
  }
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

// One element of `dtype` at `bytes`, as fp32 (bf16 and f16 widen exactly).
float to_float(const std::string& dtype, const unsigned char* bytes) {
  if (dtype == "F32") {
    float v;
    std::memcpy(&v, bytes, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, bytes, 2);
  if (dtype == "BF16") return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
  // IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
  const uint32_t sign = (h >> 15) & 1u, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  float magnitude;
  if (exponent == 0)
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // subnormal
  else if (exponent == 31)
    magnitude = mantissa ? NAN : INFINITY;
  else
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  return sign ? -magnitude : magnitude;
}

bool readable_dtype(const std::string& dtype) { return dtype == "F32" || dtype == "BF16" || dtype == "F16"; }

// The TOML text of a config.json value for a key of `type`, or "" when the value has another type.
std::string toml_of(const nlohmann::json& v, ValueType type) {
  switch (type) {
    case ValueType::Int:
      return v.is_number_integer() ? std::to_string(v.get<int64_t>()) : "";
    case ValueType::Float:
      if (!v.is_number()) return "";
      {
        std::ostringstream s;
        s.precision(17);
        s << v.get<double>();
        std::string text = s.str();
        if (text.find_first_of(".eE") == std::string::npos) text += ".0";
        return text;
      }
    case ValueType::Bool:
      return v.is_boolean() ? (v.get<bool>() ? "true" : "false") : "";
    default:
      return "";
  }
}

// The job's value of `key` in the form toml_of writes.
std::string job_value(const Config& config, const std::string& key, ValueType type) {
  switch (type) {
    case ValueType::Int: return toml_of(nlohmann::json(config.get_int(key)), type);
    case ValueType::Float: return toml_of(nlohmann::json(config.get_float(key)), type);
    case ValueType::Bool: return toml_of(nlohmann::json(config.get_bool(key)), type);
    default: return "";
  }
}

}  // namespace

HfCheckpoint HfCheckpoint::open(const fs::path& dir) {
  HfCheckpoint c;
  c.dir_ = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir.string() + ": not a folder");
  c.config_ = read_json(dir / "config.json");
  if (!c.config_.is_object()) throw std::runtime_error((dir / "config.json").string() + ": not a JSON object");
  std::vector<fs::path> files;
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index, ec)) {
    const nlohmann::json j = read_json(index);
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw std::runtime_error(index.string() + ": no \"weight_map\" object");
    std::set<std::string> seen;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw std::runtime_error(index.string() + ": weight_map[\"" + name + "\"] is not a file name");
      if (seen.insert(file.get<std::string>()).second) files.push_back(dir / file.get<std::string>());
    }
  } else {
    files.push_back(dir / "model.safetensors");
  }
  for (const fs::path& file : files) {
    if (!fs::exists(file, ec)) throw std::runtime_error(file.string() + ": no such file");
    const SafetensorsHeader header = read_safetensors_header(file);
    for (const SafetensorsEntry& e : header.entries) {
      if (c.tensors_.count(e.name))
        throw std::runtime_error(file.string() + ": tensor '" + e.name + "' is also in " +
                                 c.tensors_.at(e.name).file.string());
      c.tensors_[e.name] = Tensor{file, e, header.data_start};
    }
  }
  return c;
}

std::vector<std::string> HfCheckpoint::check(const ModelSpec& model) const {
  std::vector<std::string> problems;
  std::map<std::string, const Tensor*> by_param;
  for (const auto& [name, t] : tensors_) {
    const std::string param = model.param_of_hf_tensor(name);
    if (!param.empty()) by_param[param] = &t;
  }
  const std::vector<ParamInfo> params = model.params(0, 1);
  std::set<std::string> expected;
  for (const ParamInfo& info : params) {
    expected.insert(info.name);
    const auto it = by_param.find(info.name);
    if (it == by_param.end()) {
      problems.push_back(dir_.string() + ": no tensor '" + info.name + "' " + shape_text(info.shape) +
                         ", which the model needs");
      continue;
    }
    const Tensor& t = *it->second;
    if (t.entry.shape != info.shape)
      problems.push_back(t.file.string() + ": tensor '" + t.entry.name + "' is " + shape_text(t.entry.shape) +
                         ", expected " + shape_text(info.shape));
    if (!readable_dtype(t.entry.dtype))
      problems.push_back(t.file.string() + ": tensor '" + t.entry.name + "' has dtype " + t.entry.dtype +
                         "; F32, BF16 or F16 are read");
  }
  for (const auto& [param, t] : by_param)
    if (!expected.count(param))
      problems.push_back(t->file.string() + ": tensor '" + t->entry.name + "' is no parameter of the model (" +
                         model.describe() + ")");
  return problems;
}

const HfCheckpoint::Tensor& HfCheckpoint::tensor_of(const std::string& name, const ModelSpec& model) const {
  for (const auto& [file_name, t] : tensors_)
    if (model.param_of_hf_tensor(file_name) == name) return t;
  throw std::runtime_error(dir_.string() + ": no tensor '" + name + "'");
}

// The slice's elements map to runs of consecutive elements of the whole
// tensor (a band of rows, or each row's columns): each run is one read.
void HfCheckpoint::read(const ParamInfo& info, const ModelSpec& model, int64_t begin, int64_t end, float* out) const {
  const Tensor& t = tensor_of(info.name, model);
  const uint64_t element = t.entry.dtype == "F32" ? 4 : 2;
  std::ifstream in(t.file, std::ios::binary);
  if (!in) throw std::runtime_error(t.file.string() + ": cannot open: " + std::strerror(errno));
  std::vector<unsigned char> bytes;
  for (int64_t i = begin; i < end;) {
    const int64_t first = info.global_index(i);
    if (first < 0) {  // padding past the vocabulary
      out[i - begin] = 0.0f;
      ++i;
      continue;
    }
    int64_t run = 1;
    while (i + run < end && info.global_index(i + run) == first + run) ++run;
    bytes.resize(static_cast<size_t>(run) * element);
    in.seekg(static_cast<std::streamoff>(t.data_start + t.entry.begin + static_cast<uint64_t>(first) * element));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!in) throw std::runtime_error(t.file.string() + ": tensor '" + t.entry.name + "': read failed");
    for (int64_t k = 0; k < run; ++k) out[i - begin + k] = to_float(t.entry.dtype, bytes.data() + k * element);
    i += run;
  }
}

bool apply_hf_model_type(Config& config, const HfCheckpoint& checkpoint, std::vector<std::string>& errors) {
  const nlohmann::json& c = checkpoint.config();
  const std::string where = checkpoint.config_path().string();
  if (!c.contains("model_type") || !c["model_type"].is_string()) {
    errors.push_back(config.format_error("model.init_from", where + " has no \"model_type\""));
    return false;
  }
  const std::string type = c["model_type"];
  const Architecture* found = nullptr;
  for (const Architecture* a : architectures())
    if (a->hf_model_type() == type) found = a;
  if (found == nullptr) {
    std::string known;
    for (const Architecture* a : architectures()) known += (known.empty() ? "" : ", ") + a->hf_model_type();
    errors.push_back(config.format_error("model.init_from", where + ": model_type \"" + type +
                                                                "\" is no architecture of dfm (expected one of: " +
                                                                known + ")"));
    return false;
  }
  const std::string arch = nlohmann::json(found->name()).dump();  // as a TOML string
  if (!config.fill_unset("model.arch", arch, where + " (model_type)") &&
      config.get_string("model.arch") != found->name()) {
    errors.push_back(config.format_error("model.arch", "the job sets \"" + config.get_string("model.arch") +
                                                           "\" but " + where + " holds a \"" + type +
                                                           "\" model (model.arch = \"" + found->name() + "\")"));
    return false;
  }
  return true;
}

void apply_hf_config(Config& config, const HfCheckpoint& checkpoint, const Architecture& arch,
                     std::vector<std::string>& errors) {
  const nlohmann::json& c = checkpoint.config();
  const std::string where = checkpoint.config_path().string();
  std::map<std::string, ValueType> types;
  for (const KeySpec& k : arch.model_keys()) types[k.key] = k.type;
  for (const HfConfigKey& k : arch.hf_config_keys()) {
    if (!c.contains(k.hf_key) || c[k.hf_key].is_null()) continue;
    const std::string key = "model." + k.model_key;
    const std::string value = toml_of(c[k.hf_key], types.at(k.model_key));
    if (value.empty()) {
      errors.push_back(config.format_error("model.init_from", where + ": \"" + k.hf_key + "\" is " +
                                                                  c[k.hf_key].dump() + ", not a value for " + key));
      continue;
    }
    if (config.fill_unset(key, value, where + " (" + k.hf_key + ")")) continue;
    // Set by the job (check_schema reports a value of the wrong type): it must say the same.
    if (!config.is_valid(key)) continue;
    const std::string set = job_value(config, key, types.at(k.model_key));
    if (set != value)
      errors.push_back(config.format_error(key, "the job sets " + set + " but " + where + " says " + value + " (" +
                                                    k.hf_key + "); leave the key out or make them agree"));
  }
}

}  // namespace dfm
