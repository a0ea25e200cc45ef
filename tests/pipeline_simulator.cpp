// The pipeline simulator (pipeline_simulator.hpp). Each rank's clock only
// moves forward through its own list, and an action's time depends only on
// its rank's previous action and on the message it receives, so the ranks can
// be advanced in any order: the result does not depend on it.
#include "pipeline_simulator.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

namespace dfm::pp::sim {
namespace {

using Kind = PipeAction::Kind;

bool is_send(Kind k) { return k == Kind::SendActivation || k == Kind::SendGradient; }
bool is_recv(Kind k) { return k == Kind::RecvActivation || k == Kind::RecvGradient; }

class Simulation {
 public:
  Simulation(const std::vector<std::vector<PipeAction>>& schedules, int32_t v, SendMode mode, const Costs& costs)
      : lists_(schedules),
        pp_(static_cast<int32_t>(schedules.size())),
        v_(v),
        mode_(mode),
        costs_(costs),
        next_(schedules.size(), 0),
        clock_(schedules.size(), 0),
        live_(schedules.size()) {
    result_.busy.assign(schedules.size(), 0);
    result_.peak_live.assign(schedules.size(), 0);
    if (mode == SendMode::Exchange) number_messages();
  }

  Result run() {
    bool progress = true;
    while (progress && result_.problem.empty()) {
      progress = false;
      for (int32_t r = 0; r < pp_ && result_.problem.empty(); ++r)
        while (!done(r) && result_.problem.empty() && step(r)) progress = true;
    }
    if (result_.problem.empty()) check_end();
    result_.makespan = clock_.empty() ? 0 : *std::max_element(clock_.begin(), clock_.end());
    return result_;
  }

 private:
  // (sender, receiver, message id)
  using Key = std::tuple<int32_t, int32_t, int64_t>;

  bool done(int32_t r) const { return next_[static_cast<size_t>(r)] >= lists_[static_cast<size_t>(r)].size(); }
  const PipeAction& current(int32_t r) const { return lists_[static_cast<size_t>(r)][next_[static_cast<size_t>(r)]]; }
  double& clock(int32_t r) { return clock_[static_cast<size_t>(r)]; }
  std::string where(int32_t r) const { return "rank " + std::to_string(r) + " " + to_string(current(r)); }

  Key key_of(int32_t r, const PipeAction& a) const {
    const int64_t id = message_id(pp_, v_, r, a);
    return is_send(a.kind) ? Key{r, a.peer, id} : Key{a.peer, r, id};
  }

  // Runs rank r's current action if it can; false when r has to wait.
  bool step(int32_t r) {
    const PipeAction& a = current(r);
    if (a.peer >= pp_ || (a.peer < 0 && (is_send(a.kind) || is_recv(a.kind)))) {
      result_.problem = where(r) + " names a peer outside 0.." + std::to_string(pp_ - 1);
      return false;
    }
    if (a.kind == Kind::Forward || a.kind == Kind::Backward)
      compute(r, a);
    else if (mode_ == SendMode::Rendezvous)
      return rendezvous(r, a);
    else if (mode_ == SendMode::Exchange)
      return exchange(r);
    else if (is_send(a.kind))
      post(r, a);
    else if (!receive(r, a))
      return false;
    ++next_[static_cast<size_t>(r)];
    return true;
  }

  void compute(int32_t r, const PipeAction& a) {
    auto& live = live_[static_cast<size_t>(r)];
    const std::pair<int32_t, int32_t> activation{a.micro_batch, a.chunk};
    const bool forward = a.kind == Kind::Forward;
    if (forward && !live.insert(activation).second)
      result_.problem = where(r) + " runs while its forward's activations are still held";
    if (!forward && live.erase(activation) == 0) result_.problem = where(r) + " runs without a forward before it";
    const double start = clock(r);
    const double cost = forward ? costs_.forward : costs_.backward;
    clock(r) += cost;
    result_.busy[static_cast<size_t>(r)] += cost;
    auto& peak = result_.peak_live[static_cast<size_t>(r)];
    peak = std::max(peak, static_cast<int32_t>(live.size()));
    result_.spans.push_back({r, forward, a.micro_batch, a.chunk, start, clock(r)});
  }

  void post(int32_t r, const PipeAction& a) {
    if (!posted_.emplace(key_of(r, a), Posted{clock(r) + costs_.message, where(r)}).second)
      result_.problem = where(r) + " sends a message that was already sent";
  }

  bool receive(int32_t r, const PipeAction& a) {
    const auto it = posted_.find(key_of(r, a));
    if (it == posted_.end()) return false;
    clock(r) = std::max(clock(r), it->second.arrival);
    posted_.erase(it);
    return true;
  }

  // A blocking send or receive: completes with the peer's matching action.
  bool rendezvous(int32_t r, const PipeAction& a) {
    const int32_t p = a.peer;
    if (done(p)) return false;
    const PipeAction& b = current(p);
    const bool pair = is_send(a.kind) ? is_recv(b.kind) && b.peer == r : is_send(b.kind) && b.peer == r;
    if (!pair || key_of(p, b) != key_of(r, a)) return false;
    const double end = std::max(clock(r), clock(p)) + costs_.message;
    clock(r) = clock(p) = end;
    ++next_[static_cast<size_t>(r)];
    ++next_[static_cast<size_t>(p)];
    return true;
  }

  // ---- SendMode::Exchange ----

  // (sender, receiver, posting position among that pair's messages, is the send)
  using Position = std::tuple<int32_t, int32_t, int32_t, bool>;

  // Each message's position in its pair's posting order, and where it is.
  void number_messages() {
    std::map<std::tuple<int32_t, int32_t, bool>, int32_t> posted;
    for (int32_t r = 0; r < pp_; ++r) {
      const auto& list = lists_[static_cast<size_t>(r)];
      matched_.emplace_back(list.size(), false);
      match_time_.emplace_back(list.size(), 0.0);
      for (size_t i = 0; i < list.size(); ++i) {
        const PipeAction& a = list[i];
        if (!is_send(a.kind) && !is_recv(a.kind)) continue;
        const bool send = is_send(a.kind);
        const int32_t sender = send ? r : a.peer, receiver = send ? a.peer : r;
        const int32_t k = posted[{sender, receiver, send}]++;
        at_[Position{sender, receiver, k, send}] = {r, i};
        position_[{r, i}] = Position{sender, receiver, k, send};
      }
    }
  }

  // The last index of the exchange that starts at rank r's index `first`.
  size_t exchange_end(int32_t r, size_t first) const {
    size_t last = first;
    while (!ends_exchange(lists_[static_cast<size_t>(r)], last)) ++last;
    return last;
  }

  // Whether rank p is in the exchange that holds its index `i`.
  bool in_current_exchange(int32_t p, size_t i) const {
    if (done(p)) return false;
    const size_t first = next_[static_cast<size_t>(p)];
    const Kind k = current(p).kind;
    return (is_send(k) || is_recv(k)) && first <= i && i <= exchange_end(p, first);
  }

  // Matches what it can of rank r's current exchange; completes it when every
  // message is matched. False when nothing changed.
  bool exchange(int32_t r) {
    const size_t first = next_[static_cast<size_t>(r)], last = exchange_end(r, first);
    auto& matched = matched_[static_cast<size_t>(r)];
    auto& times = match_time_[static_cast<size_t>(r)];
    bool changed = false;
    for (size_t i = first; i <= last && result_.problem.empty(); ++i) {
      if (matched[i]) continue;
      auto [sender, receiver, k, send] = position_.at({r, i});
      const auto partner = at_.find(Position{sender, receiver, k, !send});
      const std::string mine = "rank " + std::to_string(r) + " " + to_string(lists_[static_cast<size_t>(r)][i]);
      if (partner == at_.end()) {
        result_.problem = mine + " has no partner: its peer posts fewer messages of the pair";
        return false;
      }
      const auto [p, j] = partner->second;
      if (!in_current_exchange(p, j)) continue;
      const PipeAction& theirs = lists_[static_cast<size_t>(p)][j];
      if (key_of(p, theirs) != key_of(r, lists_[static_cast<size_t>(r)][i])) {
        result_.problem = mine + " meets rank " + std::to_string(p) + " " + to_string(theirs) +
                          ": a pair's messages match in posting order";
        return false;
      }
      const double end = std::max(clock(r), clock(p)) + costs_.message;
      matched[i] = matched_[static_cast<size_t>(p)][j] = true;
      times[i] = match_time_[static_cast<size_t>(p)][j] = end;
      changed = true;
    }
    if (!std::all_of(matched.begin() + static_cast<std::ptrdiff_t>(first),
                     matched.begin() + static_cast<std::ptrdiff_t>(last) + 1, [](bool m) { return m; }))
      return changed;
    for (size_t i = first; i <= last; ++i) clock(r) = std::max(clock(r), times[i]);
    next_[static_cast<size_t>(r)] = last + 1;
    return true;
  }

  void check_end() {
    std::string stuck;
    for (int32_t r = 0; r < pp_; ++r)
      if (!done(r)) {
        if (!stuck.empty()) stuck += "; ";
        stuck += where(r);
      }
    if (!stuck.empty()) {
      result_.problem = "deadlock: " + stuck;
      return;
    }
    if (!posted_.empty()) {
      result_.problem = posted_.begin()->second.sender + " was never received";
      return;
    }
    for (int32_t r = 0; r < pp_; ++r)
      if (!live_[static_cast<size_t>(r)].empty()) {
        result_.problem = "rank " + std::to_string(r) + " ends the step holding activations of " +
                          std::to_string(live_[static_cast<size_t>(r)].size()) + " forwards";
        return;
      }
  }

  const std::vector<std::vector<PipeAction>>& lists_;
  int32_t pp_, v_;
  SendMode mode_;
  Costs costs_;
  std::vector<size_t> next_;
  std::vector<double> clock_;
  std::vector<std::set<std::pair<int32_t, int32_t>>> live_;
  // A buffered send not yet received: when its data arrives, and who sent it.
  struct Posted {
    double arrival;
    std::string sender;
  };
  std::map<Key, Posted> posted_;
  // Exchange mode: where each message is in its pair's order and back, and
  // whether (and when) each action of each rank met its partner.
  std::map<Position, std::pair<int32_t, size_t>> at_;
  std::map<std::pair<int32_t, size_t>, Position> position_;
  std::vector<std::vector<bool>> matched_;
  std::vector<std::vector<double>> match_time_;
  Result result_;
};

}  // namespace

double Result::idle_fraction() const {
  if (makespan <= 0) return 0;
  double idle = 0;
  for (double b : busy) idle += makespan - b;
  return idle / (static_cast<double>(busy.size()) * makespan);
}

Result simulate(const std::vector<std::vector<PipeAction>>& schedules, int32_t virtual_stages, SendMode mode,
                const Costs& costs) {
  return Simulation(schedules, virtual_stages, mode, costs).run();
}

}  // namespace dfm::pp::sim
