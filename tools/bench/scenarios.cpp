// The scenarios. Every client role other than the measuring one runs in its own forked process (the
// echo server, parallel clients, subscribers), so that the daemon's CPU and the throughput are those of
// a real bus with separate peers. Workers report readiness and numbers through pipes and a shared
// anonymous mapping; nothing waits on a timer, only on the event that proves progress. Every peer talks
// to the bus through the client library of options.client (bench_client.hpp), so that a scenario does
// the same protocol work whichever library runs it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "afbus/fd.hpp"
#include "bench.hpp"
#include "bench_client.hpp"
#include "bench_protocol.hpp"
#include "event_counter.hpp"
#include "relay_loops.hpp"

namespace afbus::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Subscribers tell the emitter about progress every this many signals (and on Sync).
constexpr std::uint64_t kNotifyEvery = 256;
// The most signals the emitter lets any subscriber fall behind by: keeps every daemon's queues short, so
// that no daemon is measured dropping or queueing without bound.
constexpr std::uint64_t kWindow = 4096;
constexpr int kMaxWorkers = 64;

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// --- /proc ---

}  // namespace

Result<double> process_cpu_seconds(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return failure("cannot read /proc/" + std::to_string(pid) + "/stat");
    const auto close = line.rfind(')');
    if (close == std::string::npos) return failure("malformed /proc/pid/stat");
    // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
        if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

Result<double> process_status_kib(pid_t pid, std::string_view field) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':')
            return std::strtod(line.c_str() + field.size() + 1, nullptr);
    }
    return failure("no " + std::string(field) + " in /proc/" + std::to_string(pid) + "/status");
}

Result<double> process_rss_kib(pid_t pid) {
    return process_status_kib(pid, "VmRSS");
}

namespace {

// --- Coordination between the driver and its workers ---

// Lives in a MAP_SHARED anonymous mapping made before the workers fork.
struct Shared {
    std::atomic<std::uint64_t> received[kMaxWorkers];   // signals counted by each subscriber
    std::atomic<std::uint64_t> completed[kMaxWorkers];  // calls completed by each parallel client
    std::atomic<std::uint64_t> elapsed_ns[kMaxWorkers];
    std::atomic<int> failed;
};

class SharedMap {
public:
    SharedMap() {
        void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) shared_ = new (p) Shared{};
    }
    ~SharedMap() {
        if (shared_) ::munmap(shared_, sizeof(Shared));
    }
    SharedMap(const SharedMap&) = delete;
    SharedMap& operator=(const SharedMap&) = delete;
    Shared* operator->() const { return shared_; }
    [[nodiscard]] Shared* get() const { return shared_; }
    [[nodiscard]] bool valid() const { return shared_ != nullptr; }

private:
    Shared* shared_ = nullptr;
};

struct Pipe {
    Fd read, write;
    static Result<Pipe> make() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) < 0) return failure(std::string("pipe: ") + std::strerror(errno));
        return Pipe{Fd(fds[0]), Fd(fds[1])};
    }
};

bool write_byte(int fd, char c) {
    for (;;) {
        const ssize_t n = ::write(fd, &c, 1);
        if (n == 1) return true;
        if (n < 0 && errno == EINTR) continue;
        return false;
    }
}

// Reads one byte, waiting at most `timeout`.
Result<char> read_byte(int fd, std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    for (;;) {
        const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) return failure("timed out waiting for a worker");
        char c;
        const ssize_t n = ::read(fd, &c, 1);
        if (n == 1) return c;
        if (n < 0 && errno == EINTR) continue;
        return failure("a worker went away");
    }
}

// The forked worker processes of one scenario; killed and reaped when it ends, however it ends. A pidfd
// per worker lets every wait notice at once when a worker died instead of waiting out the timeout.
class Workers {
public:
    ~Workers() {
        for (pid_t pid : pids_) ::kill(pid, SIGKILL);
        for (pid_t pid : pids_) ::waitpid(pid, nullptr, 0);
    }
    // Runs `body` in a child; its return value is the exit status. Returns the child's pid.
    Result<pid_t> spawn(const std::function<int()>& body) {
        const pid_t pid = ::fork();
        if (pid < 0) return failure(std::string("fork: ") + std::strerror(errno));
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphans if the driver is interrupted
            const int status = body();
            // Skip atexit handlers and destructors of the driver's state, which belong to the parent.
            ::_exit(status);
        }
        pids_.push_back(pid);
        pidfds_.emplace_back(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
        return pid;
    }
    [[nodiscard]] std::vector<int> pidfds() const {
        std::vector<int> fds;
        for (const auto& fd : pidfds_)
            if (fd) fds.push_back(fd.get());
        return fds;
    }
    // Fails if any worker has exited (they only exit when told to).
    [[nodiscard]] Result<void> check_alive() const {
        for (std::size_t i = 0; i < pids_.size(); ++i) {
            pollfd p{pidfds_[i].get(), POLLIN, 0};
            if (pidfds_[i] && ::poll(&p, 1, 0) > 0) {
                int status = 0;
                ::waitpid(pids_[i], &status, WNOHANG);
                return failure("worker " + std::to_string(pids_[i]) + " exited early (status " +
                               std::to_string(status) + ")");
            }
        }
        return {};
    }
    // Reads one byte from `fd`, unless `timeout` passes or a worker exits first.
    Result<char> read_byte(int fd, std::chrono::milliseconds timeout) const {
        std::vector<pollfd> fds{{fd, POLLIN, 0}};
        for (int p : pidfds()) fds.push_back({p, POLLIN, 0});
        int n;
        while ((n = ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()))) < 0 &&
               errno == EINTR) {
        }
        if (n == 0) return failure("timed out waiting for a worker");
        if (fds[0].revents & POLLIN) return bench::read_byte(fd, 0ms);
        if (auto alive = check_alive(); !alive) return failure(alive.error());
        return failure("worker pipe closed");
    }
    // Waits for every worker to exit on its own and checks that all succeeded.
    Result<void> join() {
        std::string errors;
        for (pid_t pid : pids_) {
            int status = 0;
            ::waitpid(pid, &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                errors +=
                    " worker " + std::to_string(pid) + " failed (status " + std::to_string(status) + ")";
        }
        pids_.clear();
        pidfds_.clear();
        if (!errors.empty()) return failure(errors);
        return {};
    }

private:
    std::vector<pid_t> pids_;
    std::vector<Fd> pidfds_;
};

Result<std::unique_ptr<BusClient>> connect(const Target& target, const ScenarioOptions& options) {
    return open_bus_client(options.client, target.address);
}

struct Readiness {
    bool timed_out = false;
    std::vector<short> extra;  // revents of the extra fds
};

// Polls the connection (for whatever it wants) and the extra fds until one is ready, at most `timeout`.
Readiness wait_ready(BusClient& c, const std::vector<int>& extra, std::chrono::milliseconds timeout) {
    std::vector<pollfd> fds;
    fds.push_back({c.fd(), c.poll_events(), 0});
    for (int fd : extra) fds.push_back({fd, POLLIN, 0});
    int n;
    while ((n = ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()))) < 0 && errno == EINTR) {
    }
    Readiness r;
    r.timed_out = n == 0;
    for (std::size_t i = 1; i < fds.size(); ++i) r.extra.push_back(fds[i].revents);
    return r;
}

// One byte from a non-blocking pipe shared by several workers: nullopt when another worker took it.
std::optional<char> try_read_byte(int fd, bool& closed) {
    char c;
    for (;;) {
        const ssize_t n = ::read(fd, &c, 1);
        if (n == 1) return c;
        if (n < 0 && errno == EINTR) continue;
        closed = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        return std::nullopt;
    }
}

// A progress poke: if the pipe is full, the emitter has wake-ups pending already, so dropping it is fine.
bool notify(int fd, char c) {
    return ::write(fd, &c, 1) == 1 || errno == EAGAIN || errno == EINTR;
}

// --- Daemon resource sampling ---

// The daemon's CPU time during a measured phase, and with --count-events the perf events it caused
// (event_counter.hpp). Counting is set up when the phase starts; a failure to count is the scenario's.
class CpuMeter {
public:
    CpuMeter(pid_t pid, const ScenarioOptions& options) : pid_(pid) {
        if (pid_ <= 0) return;
        if (!options.count_events.empty()) {
            auto counter = EventCounter::start(pid_, options.count_events, options.timeout);
            if (counter) counter_ = std::move(*counter);
            else counting_error_ = counter.error();
        }
        start_ = process_cpu_seconds(pid_).value_or(0.0);
    }

    // Ends the phase: CPU time and counts are taken now (the first call; later calls change nothing).
    void finish() {
        if (finished_ || pid_ <= 0) return;
        finished_ = true;
        if (auto now = process_cpu_seconds(pid_)) cpu_s_ = *now - start_;
        if (counter_) {
            auto counts = counter_->stop();
            if (counts) counts_ = std::move(*counts);
            else counting_error_ = counts.error();
            counter_.reset();
        }
    }
    [[nodiscard]] const std::optional<double>& cpu_seconds() const { return cpu_s_; }
    [[nodiscard]] const std::map<std::string, double>& counts() const { return counts_; }
    [[nodiscard]] const std::string& counting_error() const { return counting_error_; }

private:
    pid_t pid_;
    double start_ = 0;
    bool finished_ = false;
    std::optional<double> cpu_s_;
    std::unique_ptr<EventCounter> counter_;
    std::map<std::string, double> counts_;
    std::string counting_error_;
};

std::optional<double> rss(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    auto r = process_rss_kib(pid);
    if (!r) return std::nullopt;
    return *r;
}

// The daemon's CPU time per operation as `name` ("daemon_cpu_us_per_call"), scaled by `per`, and with
// --count-events every counted event per `counted` operations named `what` ("<event>_per_message").
Result<void> add_cpu_per_op(ScenarioResult& r, CpuMeter& cpu, double operations, const std::string& name,
                            double per, const std::string& unit, double counted, const std::string& what) {
    cpu.finish();
    if (!cpu.counting_error().empty()) return failure("counting events: " + cpu.counting_error());
    if (operations <= 0) return {};
    if (auto s = cpu.cpu_seconds()) r.metrics.push_back({name, *s / operations * per, unit, false});
    for (const auto& [event, count] : cpu.counts())
        r.metrics.push_back({event + "_per_" + what, count / counted, "", false});
    return {};
}

// --- The echo server (ping, ping-parallel, payload) ---

// A worker's exit status, after saying why on stderr: the status alone would not tell which library
// call failed.
int worker_failed(int status, const std::string& why) {
    std::fprintf(stderr, "afbus-bench: worker %d: %s\n", static_cast<int>(::getpid()), why.c_str());
    return status;
}

int server_main(const Target& target, const ScenarioOptions& options, int ready_fd) {
    auto c = connect(target, options);
    if (!c) return worker_failed(10, c.error());
    BusClient& conn = **c;
    auto service = conn.serve_echo();
    if (!service) return worker_failed(11, service.error());
    if (!write_byte(ready_fd, 'r')) return 13;
    // Runs until the driver kills it at the end of the scenario.
    auto served = conn.serve();
    return worker_failed(14, served ? std::string("the connection's loop ended") : served.error());
}

// Starts the echo server and waits until it owns its name.
Result<void> start_server(Workers& workers, const Target& target, const ScenarioOptions& options) {
    auto ready = Pipe::make();
    if (!ready) return failure(ready.error());
    const int ready_fd = ready->write.get();
    if (auto r = workers.spawn([&] { return server_main(target, options, ready_fd); }); !r)
        return failure(r.error());
    ready->write.reset();
    if (auto b = workers.read_byte(ready->read.get(), options.timeout); !b)
        return failure("echo server: " + b.error());
    return {};
}

// --- ping: one synchronous client ---

Result<ScenarioResult> ping(const Target& target, const ScenarioOptions& options) {
    Workers workers;
    if (auto r = start_server(workers, target, options); !r) return failure(r.error());
    auto c = connect(target, options);
    if (!c) return failure(c.error());
    // Warm up both processes' allocators and the daemon's caches before measuring.
    for (int i = 0; i < 200; ++i)
        if (auto reply = (*c)->ping(); !reply) return failure(reply.error());
    std::vector<double> latencies;
    latencies.reserve(200000);
    CpuMeter cpu(target.daemon_pid, options);
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(options.duration_s);
    auto now = start;
    do {
        auto reply = (*c)->ping();
        const auto after = Clock::now();
        if (!reply) return failure(reply.error());
        latencies.push_back(std::chrono::duration<double, std::micro>(after - now).count());
        now = after;
    } while (now < end);
    const double elapsed = seconds_since(start);
    std::sort(latencies.begin(), latencies.end());
    auto percentile = [&](double p) {
        return latencies[std::min(latencies.size() - 1,
                                  static_cast<std::size_t>(p * static_cast<double>(latencies.size())))];
    };
    ScenarioResult r{"ping", {}};
    r.metrics.push_back({"calls_per_s", static_cast<double>(latencies.size()) / elapsed, "calls/s", true});
    r.metrics.push_back({"p50_us", percentile(0.50), "us", false});
    r.metrics.push_back({"p99_us", percentile(0.99), "us", false});
    if (auto counted = add_cpu_per_op(r, cpu, static_cast<double>(latencies.size()), "daemon_cpu_us_per_call", 1e6, "us",
                                      2.0 * static_cast<double>(latencies.size()), "message"); !counted) return failure(counted.error());
    return r;
}

// --- ping-parallel: N client processes, each with `in_flight` calls outstanding ---

int parallel_client_main(const Target& target, const ScenarioOptions& options, int index, Shared* shared,
                         int ready_fd, int go_fd) {
    auto c = connect(target, options);
    if (!c) return worker_failed(20, c.error());
    BusClient& conn = **c;
    if (!write_byte(ready_fd, 'r')) return 21;
    if (!read_byte(go_fd, options.timeout)) return 22;
    // Whatever arrived during Hello first (see BusClient::process()).
    if (auto r = conn.process(); !r) return worker_failed(25, r.error());

    std::vector<RegistrationPtr> slots(static_cast<std::size_t>(options.in_flight));
    std::vector<bool> busy(slots.size(), false);
    std::uint64_t completed = 0;  // within the measured window
    int outstanding = 0;
    bool failed = false;
    bool stopping = false;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(options.duration_s);
    for (;;) {
        for (std::size_t i = 0; !stopping && i < slots.size(); ++i) {
            if (busy[i]) continue;
            auto slot = conn.ping_async([&, i](bool ok) {
                busy[i] = false;
                --outstanding;
                if (!ok) failed = true;
                if (Clock::now() < end) ++completed;
            });
            if (!slot) return worker_failed(24, slot.error());
            slots[i] = std::move(*slot);
            busy[i] = true;
            ++outstanding;
        }
        if (Clock::now() >= end) stopping = true;
        if (stopping && outstanding == 0) break;
        wait_ready(conn, {}, 1000ms);
        if (auto r = conn.process(); !r) return worker_failed(25, r.error());
        if (failed) return worker_failed(26, "a Ping failed");
    }
    shared->completed[index] = completed;
    shared->elapsed_ns[index] = static_cast<std::uint64_t>(options.duration_s * 1e9);
    return 0;
}

Result<ScenarioResult> ping_parallel(const Target& target, const ScenarioOptions& options) {
    SharedMap shared;
    if (!shared.valid()) return failure("mmap failed");
    Workers workers;
    if (auto r = start_server(workers, target, options); !r) return failure(r.error());
    auto ready = Pipe::make();
    auto go = Pipe::make();
    if (!ready || !go) return failure("pipe failed");
    Workers clients;
    const int n = std::min(options.parallel_clients, kMaxWorkers);
    for (int i = 0; i < n; ++i) {
        const int ready_fd = ready->write.get(), go_fd = go->read.get();
        Shared* s = shared.get();
        if (auto r = clients.spawn([&, i, s, ready_fd, go_fd] {
                return parallel_client_main(target, options, i, s, ready_fd, go_fd);
            });
            !r)
            return failure(r.error());
        // One at a time: a burst of connects can overflow a daemon's listen backlog, and libafbus's
        // non-blocking connect then fails with EAGAIN.
        if (auto b = clients.read_byte(ready->read.get(), options.timeout); !b)
            return failure("client: " + b.error());
    }
    CpuMeter cpu(target.daemon_pid, options);
    // One byte per client: each takes exactly one, so that all start together.
    for (int i = 0; i < n; ++i)
        if (!write_byte(go->write.get(), 'g')) return failure("cannot start the clients");
    if (auto r = clients.join(); !r) return failure("ping-parallel clients:" + r.error());
    double rate = 0, total = 0;
    for (int i = 0; i < n; ++i) {
        const double calls = static_cast<double>(shared->completed[i].load());
        total += calls;
        rate += calls / (static_cast<double>(shared->elapsed_ns[i].load()) / 1e9);
    }
    ScenarioResult r{"ping-parallel", {}};
    r.metrics.push_back({"calls_per_s", rate, "calls/s", true});
    if (auto counted = add_cpu_per_op(r, cpu, total, "daemon_cpu_us_per_call", 1e6, "us", 2.0 * total, "message"); !counted) return failure(counted.error());
    return r;
}

// --- Signal subscribers (fanout, matches) and the emitter ---

// Installs the rules "arg0='k1'".."arg0='k<count-1>'" with up to 64 AddMatch calls in flight, so that the
// rate is the daemon's, not one round trip's.
bool install_rules(BusClient& conn, int count) {
    int next = 1, outstanding = 0;
    bool failed = false;
    std::vector<RegistrationPtr> slots;
    slots.reserve(static_cast<std::size_t>(count));
    while (!failed && (next < count || outstanding > 0)) {
        while (next < count && outstanding < 64) {
            std::string key = "k";  // built in place: see match_rule() on GCC 12's -Wrestrict
            key += std::to_string(next);
            auto slot = conn.add_match_async(match_rule(key), [&](bool ok) {
                --outstanding;
                if (!ok) failed = true;
            });
            if (!slot) return false;
            slots.push_back(std::move(*slot));
            ++outstanding;
            ++next;
        }
        wait_ready(conn, {}, 1000ms);
        if (!conn.process()) return false;
    }
    return !failed;
}

// A subscriber: one match rule (any signal of the bench interface, or only arg0 = `arg0`), counts Tick
// signals into shared->received[index], and pokes `notify_fd` every kNotifyEvery ticks and on Sync.
// Commands on `control_fd`: 'i' installs the other match_rules - 1 rules (then answers on `reply_fd`),
// 'q' quits.
int subscriber_main(const Target& target, const ScenarioOptions& options, const std::string& arg0, int index,
                    Shared* shared, int ready_fd, int notify_fd, int control_fd, int reply_fd) {
    auto c = connect(target, options);
    if (!c) return worker_failed(30, c.error());
    BusClient& conn = **c;
    std::uint64_t ticks = 0;
    bool broken = false;
    auto sub = conn.subscribe(match_rule(arg0), [&](std::string_view member) {
        if (member == "Tick") {
            shared->received[index].store(++ticks, std::memory_order_release);
            if (ticks % kNotifyEvery == 0 && !notify(notify_fd, 'n')) broken = true;
        } else if (member == "Sync") {
            if (!notify(notify_fd, 's')) broken = true;
        }
    });
    if (!sub) return worker_failed(31, sub.error());
    if (!write_byte(ready_fd, 'r')) return 32;
    for (;;) {
        if (auto r = conn.process(); !r) return worker_failed(33, r.error());
        if (broken) return 34;
        const auto ready = wait_ready(conn, {control_fd}, std::chrono::milliseconds(options.timeout));
        if (!(ready.extra[0] & (POLLIN | POLLHUP))) continue;
        bool closed = false;
        auto command = try_read_byte(control_fd, closed);
        if (closed) return 35;
        if (!command) continue;
        if (*command == 'q') return 0;
        if (*command == 'i') {
            const auto start = Clock::now();
            if (!install_rules(conn, options.match_rules)) return 36;
            shared->elapsed_ns[index] = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
            if (!write_byte(reply_fd, 'd')) return 37;
        }
    }
}

struct Subscribers {
    SharedMap shared;
    Workers workers;
    Pipe ready, notify, control, reply;
    int count = 0;
};

Result<std::unique_ptr<Subscribers>> start_subscribers(const Target& target, const ScenarioOptions& options,
                                                       int count, const std::string& arg0) {
    auto s = std::make_unique<Subscribers>();
    if (!s->shared.valid()) return failure("mmap failed");
    auto ready = Pipe::make(), notify = Pipe::make(), control = Pipe::make(), reply = Pipe::make();
    if (!ready || !notify || !control || !reply) return failure("pipe failed");
    s->ready = std::move(*ready);
    s->notify = std::move(*notify);
    s->control = std::move(*control);
    s->reply = std::move(*reply);
    // Neither side ever blocks on the notify pipe: subscribers drop pokes when it is full (the emitter has
    // wake-ups pending then), and the emitter drains it whenever it waits. Subscribers share the control
    // pipe, so a command byte may be taken by another one.
    ::fcntl(s->notify.read.get(), F_SETFL, O_NONBLOCK);
    ::fcntl(s->notify.write.get(), F_SETFL, O_NONBLOCK);
    ::fcntl(s->control.read.get(), F_SETFL, O_NONBLOCK);
    s->count = std::min(count, kMaxWorkers);
    Shared* shared = s->shared.get();
    for (int i = 0; i < s->count; ++i) {
        const int ready_fd = s->ready.write.get(), notify_fd = s->notify.write.get();
        const int control_fd = s->control.read.get(), reply_fd = s->reply.write.get();
        if (auto r = s->workers.spawn([&, i] {
                return subscriber_main(target, options, arg0, i, shared, ready_fd, notify_fd, control_fd,
                                       reply_fd);
            });
            !r)
            return failure(r.error());
        // One at a time, as in ping-parallel (listen backlogs).
        if (auto b = s->workers.read_byte(s->ready.read.get(), options.timeout); !b)
            return failure("subscriber: " + b.error());
    }
    return s;
}

Result<void> stop_subscribers(Subscribers& s) {
    for (int i = 0; i < s.count; ++i)
        if (!write_byte(s.control.write.get(), 'q')) return failure("cannot stop the subscribers");
    if (auto r = s.workers.join(); !r) return failure("subscribers:" + r.error());
    return {};
}

std::uint64_t slowest(const Subscribers& s) {
    std::uint64_t m = UINT64_MAX;
    for (int i = 0; i < s.count; ++i) m = std::min(m, s.shared->received[i].load(std::memory_order_acquire));
    return m;
}

struct EmitResult {
    std::uint64_t emitted = 0;
    double seconds = 0;
};

// Emits Tick signals for `duration_s`, never more than kWindow ahead of the slowest subscriber, then a
// Sync, and returns once every subscriber has counted every Tick. Time runs until the last delivery.
Result<EmitResult> emit(BusClient& conn, Subscribers& s, const std::string& arg0,
                        const ScenarioOptions& options) {
    const std::uint64_t base = slowest(s);
    EmitResult r;
    auto drain = [&] {
        char buf[512];
        while (::read(s.notify.read.get(), buf, sizeof buf) > 0) {
        }
    };
    std::vector<int> extra{s.notify.read.get()};
    for (int fd : s.workers.pidfds()) extra.push_back(fd);
    auto wait_progress = [&]() -> Result<void> {
        const auto ready = wait_ready(conn, extra, std::chrono::milliseconds(options.timeout));
        if (auto alive = s.workers.check_alive(); !alive) return failure(alive.error());
        if (!conn.process()) return failure("emitter lost its connection");
        if (ready.extra[0] & POLLIN) drain();
        if (ready.timed_out) return failure("subscribers stopped receiving");
        return {};
    };
    // Whatever arrived during the blocking calls before (see BusClient::process()).
    if (auto p = conn.process(); !p) return failure(p.error());
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(options.duration_s);
    std::uint64_t known_slowest = base;
    auto room = [&] { return kWindow - std::min<std::uint64_t>(kWindow, r.emitted - (known_slowest - base)); };
    while (Clock::now() < end) {
        if (room() == 0) {
            known_slowest = slowest(s);
            if (room() == 0) {
                if (auto w = wait_progress(); !w) return failure(w.error());
                continue;
            }
        }
        // Send a burst (as one batch with --batch-emits) before looking at the clock and the subscribers
        // again.
        const std::uint64_t burst = std::min<std::uint64_t>(64, room());
        RegistrationPtr batch = options.batch_emits ? conn.batch_sends() : nullptr;
        for (std::uint64_t k = 0; k < burst; ++k) {
            if (auto sent = conn.emit("Tick", arg0, r.emitted); !sent) return failure(sent.error());
            ++r.emitted;
        }
    }
    if (auto sent = conn.emit("Sync", arg0, r.emitted); !sent) return failure(sent.error());
    while (slowest(s) - base < r.emitted)
        if (auto w = wait_progress(); !w) return failure(w.error());
    r.seconds = seconds_since(start);
    return r;
}

Result<ScenarioResult> fanout(const Target& target, const ScenarioOptions& options, int subscribers) {
    auto s = start_subscribers(target, options, subscribers, "");
    if (!s) return failure(s.error());
    auto c = connect(target, options);
    if (!c) return failure(c.error());
    CpuMeter cpu(target.daemon_pid, options);
    auto e = emit(**c, **s, "k0", options);
    if (!e) return failure(e.error());
    const double delivered = static_cast<double>(e->emitted) * (*s)->count;
    ScenarioResult r{"fanout-" + std::to_string(subscribers), {}};
    r.metrics.push_back({"delivered_per_s", delivered / e->seconds, "msg/s", true});
    if (auto counted = add_cpu_per_op(r, cpu, delivered, "daemon_cpu_s_per_100k", 1e5, "s", delivered, "delivered"); !counted) return failure(counted.error());
    if (auto stop = stop_subscribers(**s); !stop) return failure(stop.error());
    return r;
}

// --- payload: 1 MiB echo ---

Result<ScenarioResult> payload(const Target& target, const ScenarioOptions& options) {
    Workers workers;
    if (auto r = start_server(workers, target, options); !r) return failure(r.error());
    auto c = connect(target, options);
    if (!c) return failure(c.error());
    std::vector<std::uint8_t> data(options.payload_bytes);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 131);
    auto echo = [&]() -> Result<void> {
        auto back = (*c)->echo(data);
        if (!back) return failure(back.error());
        if (*back != data.size()) return failure("Echo returned other data");
        return {};
    };
    for (int i = 0; i < 3; ++i)
        if (auto r = echo(); !r) return failure(r.error());
    CpuMeter cpu(target.daemon_pid, options);
    std::uint64_t calls = 0;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(options.duration_s);
    do {
        if (auto r = echo(); !r) return failure(r.error());
        ++calls;
    } while (Clock::now() < end);
    const double elapsed = seconds_since(start);
    const double mib = static_cast<double>(calls) * static_cast<double>(data.size()) / (1024.0 * 1024.0);
    ScenarioResult r{"payload", {}};
    r.metrics.push_back({"mib_per_s", mib / elapsed, "MiB/s", true});
    if (auto counted = add_cpu_per_op(r, cpu, mib, "daemon_cpu_ms_per_mib", 1e3, "ms", mib, "mib"); !counted) return failure(counted.error());
    return r;
}

// --- connect: connect + auth + Hello + close, one after another ---

Result<ScenarioResult> connect_rate(const Target& target, const ScenarioOptions& options) {
    for (int i = 0; i < 20; ++i)
        if (auto c = connect(target, options); !c) return failure(c.error());
    CpuMeter cpu(target.daemon_pid, options);
    std::uint64_t count = 0;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(options.duration_s);
    do {
        auto c = connect(target, options);  // closed at the end of the iteration
        if (!c) return failure(c.error());
        ++count;
    } while (Clock::now() < end);
    const double elapsed = seconds_since(start);
    ScenarioResult r{"connect", {}};
    r.metrics.push_back({"connections_per_s", static_cast<double>(count) / elapsed, "conn/s", true});
    if (auto counted = add_cpu_per_op(r, cpu, static_cast<double>(count), "daemon_cpu_us_per_connection", 1e6, "us",
                                      static_cast<double>(count), "connection"); !counted) return failure(counted.error());
    return r;
}

// --- matches: delivery with 1 rule vs match_rules rules, AddMatch rate, RSS growth ---

Result<ScenarioResult> matches(const Target& target, const ScenarioOptions& options) {
    // One subscriber with the rule arg0='k0'; every signal carries arg0 "k0", so with N rules installed
    // each signal still matches exactly one of them and the daemon must rule out the N-1 others.
    auto s = start_subscribers(target, options, 1, "k0");
    if (!s) return failure(s.error());
    auto c = connect(target, options);
    if (!c) return failure(c.error());
    const auto rss_before = rss(target.daemon_pid);
    auto one = emit(**c, **s, "k0", options);
    if (!one) return failure(one.error());

    if (!write_byte((*s)->control.write.get(), 'i')) return failure("cannot command the subscriber");
    if (auto b = (*s)->workers.read_byte((*s)->reply.read.get(), options.timeout); !b)
        return failure("AddMatch: " + b.error());
    const double add_seconds = static_cast<double>((*s)->shared->elapsed_ns[0].load()) / 1e9;
    const auto rss_after = rss(target.daemon_pid);

    auto many = emit(**c, **s, "k0", options);
    if (!many) return failure(many.error());
    ScenarioResult r{"matches", {}};
    const std::string n = std::to_string(options.match_rules);
    r.metrics.push_back(
        {"delivered_per_s_1_rule", static_cast<double>(one->emitted) / one->seconds, "msg/s", true});
    r.metrics.push_back({"delivered_per_s_" + n + "_rules",
                         static_cast<double>(many->emitted) / many->seconds, "msg/s", true});
    r.metrics.push_back({"addmatch_per_s", (options.match_rules - 1) / add_seconds, "calls/s", true});
    if (rss_before && rss_after) {
        r.metrics.push_back({"rss_kib_1_rule", *rss_before, "KiB", false});
        r.metrics.push_back({"rss_kib_" + n + "_rules", *rss_after, "KiB", false});
        r.metrics.push_back({"rss_growth_kib", *rss_after - *rss_before, "KiB", false});
    }
    if (auto stop = stop_subscribers(**s); !stop) return failure(stop.error());
    return r;
}

// --- idle: RSS with no clients and with idle_clients connected clients ---

Result<ScenarioResult> idle(const Target& target, const ScenarioOptions& options) {
    if (target.daemon_pid <= 0) return failure("idle needs the daemon's pid");
    const auto empty = rss(target.daemon_pid);
    // The anonymous part is the daemon's own memory; the rest of RSS is pages of its binary and shared
    // libraries, which every process using them shares.
    const auto empty_anon = process_status_kib(target.daemon_pid, "RssAnon");
    std::vector<std::unique_ptr<BusClient>> clients;
    clients.reserve(static_cast<std::size_t>(options.idle_clients));
    for (int i = 0; i < options.idle_clients; ++i) {
        auto c = connect(target, options);  // returns after Hello: the daemon holds the client's full state
        if (!c) return failure("client " + std::to_string(i) + ": " + c.error());
        clients.push_back(std::move(*c));
    }
    const auto loaded = rss(target.daemon_pid);
    const auto loaded_anon = process_status_kib(target.daemon_pid, "RssAnon");
    if (!empty || !loaded) return failure("cannot read the daemon's RSS");
    ScenarioResult r{"idle", {}};
    const std::string n = std::to_string(options.idle_clients);
    r.metrics.push_back({"rss_kib_0_clients", *empty, "KiB", false});
    r.metrics.push_back({"rss_kib_" + n + "_clients", *loaded, "KiB", false});
    r.metrics.push_back({"kib_per_client", (*loaded - *empty) / options.idle_clients, "KiB", false});
    if (empty_anon && loaded_anon) {
        r.metrics.push_back({"anon_kib_0_clients", *empty_anon, "KiB", false});
        r.metrics.push_back({"anon_kib_" + n + "_clients", *loaded_anon, "KiB", false});
    }
    return r;
}

// --- floor and relay: what the kernel alone costs a hop, with no bus and no D-Bus library ---

constexpr std::size_t kHopBytes = 128;  // about a Ping method call on the wire

// One side of a ping-pong of kHopBytes over a stream socket: send then receive, or the reverse.
bool exchange_hop(int fd, std::byte* buffer, bool send_first) {
    auto transfer = [fd, buffer](bool sending) {
        std::size_t done = 0;
        while (done < kHopBytes) {
            const ssize_t n = sending ? ::write(fd, buffer + done, kHopBytes - done)
                                      : ::read(fd, buffer + done, kHopBytes - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            done += static_cast<std::size_t>(n);
        }
        return true;
    };
    return send_first ? transfer(true) && transfer(false) : transfer(false) && transfer(true);
}

// The echo side of the ping-pong, until the other end is closed; an exit status.
int echo_until_closed(int fd) {
    std::byte buffer[kHopBytes] = {};
    while (exchange_hop(fd, buffer, false)) {
    }
    return 0;
}

// Round trips from this process over `mine` for options.duration_s, after a warm-up; the number done
// and the seconds they took.
Result<std::pair<std::uint64_t, double>> timed_round_trips(int mine, const ScenarioOptions& options,
                                                           const char* scenario) {
    std::byte buffer[kHopBytes] = {};
    for (int i = 0; i < 200; ++i)
        if (!exchange_hop(mine, buffer, true))
            return failure(std::string(scenario) + ": the echo process went away");
    std::uint64_t round_trips = 0;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(options.duration_s);
    do {
        if (!exchange_hop(mine, buffer, true))
            return failure(std::string(scenario) + ": the echo process went away");
        ++round_trips;
    } while (Clock::now() < end);
    return std::pair{round_trips, seconds_since(start)};
}

// Two processes ping-pong a Ping call's worth of bytes over a unix socketpair. A call through a bus is
// four such hops (client → bus → server → bus → client) plus the libraries' and the bus's own work, so
// this bounds what any daemon can reach on this machine; it measures the machine, not the daemon.
Result<ScenarioResult> floor_round_trip(const ScenarioOptions& options) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return failure(std::string("socketpair: ") + std::strerror(errno));
    Fd mine(fds[0]), theirs(fds[1]);
    Workers workers;
    if (auto r = workers.spawn([&] {
            mine.reset();
            return echo_until_closed(theirs.get());
        });
        !r)
        return failure(r.error());
    theirs.reset();
    auto timed = timed_round_trips(mine.get(), options, "floor");
    mine.reset();
    if (!timed) return failure(timed.error());
    if (auto r = workers.join(); !r) return failure("floor: " + r.error());
    const auto [round_trips, elapsed] = *timed;
    ScenarioResult r{"floor", {}};
    r.metrics.push_back({"round_trips_per_s", static_cast<double>(round_trips) / elapsed, "1/s", true});
    r.metrics.push_back({"us_per_hop", elapsed / (2.0 * static_cast<double>(round_trips)) * 1e6, "us", false});
    return r;
}

// The floor with a bus's shape: the driver's round trips pass through a relay process to an echo
// process and back, four hops as a call through a bus takes, and the relay does nothing but move the
// bytes, with each of the two kinds of event loop (relay_loops.hpp). The relay's CPU per call is the
// least a daemon built on that loop can spend routing a call and its reply, one message at a time.
Result<ScenarioResult> relay_round_trip(const ScenarioOptions& options) {
    ScenarioResult result{"relay", {}};
    struct Loop {
        const char* name;
        int (*relay)(int, int);
    };
    std::vector<Loop> loops{{"epoll", relay_with_epoll}};
    if (have_io_uring_relay()) {
        loops.push_back({"io_uring", relay_with_io_uring});
        loops.push_back({"io_uring_receives", relay_with_io_uring_receives});
        loops.push_back({"io_uring_polls", relay_with_io_uring_polls});
        loops.push_back({"io_uring_peeks", relay_with_io_uring_peeks});
    }
    for (const Loop& loop : loops) {
        int client_side[2], server_side[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client_side) < 0)
            return failure(std::string("socketpair: ") + std::strerror(errno));
        Fd mine(client_side[0]), relay_client(client_side[1]);
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, server_side) < 0)
            return failure(std::string("socketpair: ") + std::strerror(errno));
        Fd relay_server(server_side[0]), echo(server_side[1]);
        Workers workers;
        if (auto r = workers.spawn([&] {
                mine.reset();
                relay_client.reset();
                relay_server.reset();
                return echo_until_closed(echo.get());
            });
            !r)
            return failure(r.error());
        auto relay = workers.spawn([&] {
            mine.reset();
            echo.reset();
            return loop.relay(relay_client.get(), relay_server.get());
        });
        if (!relay) return failure(relay.error());
        relay_client.reset();
        relay_server.reset();
        echo.reset();
        const auto cpu_before = process_cpu_seconds(*relay);
        auto timed = timed_round_trips(mine.get(), options, "relay");
        const auto cpu_after = process_cpu_seconds(*relay);
        mine.reset();
        if (!timed) return failure(timed.error());
        if (auto r = workers.join(); !r)
            return failure(std::string("relay (") + loop.name + "): " + r.error());
        const auto [round_trips, elapsed] = *timed;
        const std::string prefix = loop.name;
        result.metrics.push_back(
            {prefix + "_round_trips_per_s", static_cast<double>(round_trips) / elapsed, "1/s", true});
        if (cpu_before && cpu_after)
            result.metrics.push_back({prefix + "_relay_cpu_us_per_call",
                                      (*cpu_after - *cpu_before) / static_cast<double>(round_trips) * 1e6,
                                      "us", false});
    }
    return result;
}

}  // namespace

std::vector<std::string> all_scenarios(const std::vector<int>& fanout_sizes) {
    std::vector<std::string> names{"ping", "ping-parallel"};
    for (int s : fanout_sizes) names.push_back("fanout-" + std::to_string(s));
    for (const char* n : {"payload", "connect", "matches", "idle", "policy", "floor", "relay"})
        names.emplace_back(n);
    return names;
}

Result<ScenarioResult> run_scenario(const std::string& name, const Target& target,
                                    const ScenarioOptions& options) {
    if (name == "ping") return ping(target, options);
    if (name == "ping-parallel") return ping_parallel(target, options);
    if (name.starts_with("fanout-")) {
        const int s = std::atoi(name.c_str() + 7);
        if (s < 1 || s > kMaxWorkers)
            return failure("fanout needs 1.." + std::to_string(kMaxWorkers) + " subscribers");
        return fanout(target, options, s);
    }
    if (name == "payload") return payload(target, options);
    if (name == "connect") return connect_rate(target, options);
    if (name == "matches") return matches(target, options);
    if (name == "idle") return idle(target, options);
    if (name == "floor") return floor_round_trip(options);
    if (name == "relay") return relay_round_trip(options);
    if (name == "policy") return failure("policy starts its own daemons (not with --address)");
    return failure("unknown scenario " + name);
}

}  // namespace afbus::bench
