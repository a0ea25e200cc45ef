// The host's rendezvous store (dfm_comm_rendezvous) seen two ways: a small
// client for the plugin's own keys, and the gloo::rendezvous::Store that
// gloo's connectFullMesh exchanges its pair addresses through. Every key is
// prefixed with "<group>/" so groups never collide.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <gloo/rendezvous/store.h>

#include "dfm/comm.h"

namespace dfm::gloo_comm {

class StoreClient {
 public:
  StoreClient(const dfm_comm_rendezvous& rendezvous, std::string group_name)
      : rendezvous_(rendezvous), prefix_(std::move(group_name) + "/") {}

  // Throws std::runtime_error naming the key when the host's store fails.
  void set(const std::string& key, const std::vector<char>& value) const;
  // The value, or nothing when the key did not appear within `timeout`.
  std::optional<std::vector<char>> get(const std::string& key, std::chrono::milliseconds timeout) const;

 private:
  dfm_comm_rendezvous rendezvous_;
  std::string prefix_;
};

class GlooStoreAdapter : public gloo::rendezvous::Store {
 public:
  // `timeout` bounds every get and every wait without its own timeout.
  GlooStoreAdapter(const StoreClient& client, std::chrono::milliseconds timeout)
      : client_(client), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;

 private:
  // gloo's own keys live under "<group>/gloo/".
  static std::string gloo_key(const std::string& key) { return "gloo/" + key; }

  const StoreClient& client_;
  std::chrono::milliseconds timeout_;
};

}  // namespace dfm::gloo_comm
