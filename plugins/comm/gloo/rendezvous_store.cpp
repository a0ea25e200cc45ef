#include "rendezvous_store.hpp"

#include <stdexcept>

namespace dfm::gloo_comm {

void StoreClient::set(const std::string& key, const std::vector<char>& value) const {
  const std::string full = prefix_ + key;
  if (rendezvous_.set(rendezvous_.store, full.c_str(), value.data(), value.size()) != DFM_OK)
    throw std::runtime_error("rendezvous store refused to set key '" + full + "'");
}

std::optional<std::vector<char>> StoreClient::get(const std::string& key, std::chrono::milliseconds timeout) const {
  const std::string full = prefix_ + key;
  // Most values are short: one call usually suffices; a longer one is read
  // again at its full size (it exists by then, so that call does not wait).
  std::vector<char> value(256);
  size_t size = 0;
  dfm_status status = rendezvous_.get(rendezvous_.store, full.c_str(), value.data(), value.size(), &size,
                                      timeout.count());
  if (status == DFM_OK && size > value.size()) {
    value.resize(size);
    status = rendezvous_.get(rendezvous_.store, full.c_str(), value.data(), value.size(), &size, timeout.count());
  }
  if (status == DFM_ERR_TIMEOUT) return std::nullopt;
  if (status != DFM_OK)
    throw std::runtime_error("the rendezvous store (served by rank 0) failed to get key '" + full +
                             "': it did not answer or is gone");
  value.resize(size);
  return value;
}

void GlooStoreAdapter::set(const std::string& key, const std::vector<char>& data) { client_.set(gloo_key(key), data); }

std::vector<char> GlooStoreAdapter::get(const std::string& key) {
  auto value = client_.get(gloo_key(key), timeout_);
  if (!value)
    throw std::runtime_error("rendezvous key 'gloo/" + key + "' did not appear within " +
                             std::to_string(timeout_.count()) + " ms");
  return *value;
}

void GlooStoreAdapter::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void GlooStoreAdapter::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& key : keys) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!client_.get(gloo_key(key), std::max(left, std::chrono::milliseconds(1))))
      throw std::runtime_error("rendezvous key 'gloo/" + key + "' did not appear within " +
                               std::to_string(timeout.count()) + " ms");
  }
}

}  // namespace dfm::gloo_comm
