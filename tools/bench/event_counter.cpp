#include "event_counter.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace afbus::bench {
namespace {

struct Pipe {
    Fd read, write;
};

Result<Pipe> make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) return failure(std::string("pipe: ") + std::strerror(errno));
    return Pipe{Fd(fds[0]), Fd(fds[1])};
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

std::map<std::string, double> parse_perf_stat_csv(const std::string& text) {
    std::map<std::string, double> counts;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty() || line[0] == '#') continue;
        const auto first = line.find(',');
        if (first == std::string::npos) continue;
        const auto second = line.find(',', first + 1);
        if (second == std::string::npos) continue;
        const auto third = line.find(',', second + 1);
        const std::string value = line.substr(0, first);
        const std::string event = line.substr(second + 1, third == std::string::npos ? std::string::npos : third - second - 1);
        char* end = nullptr;
        const double count = std::strtod(value.c_str(), &end);
        if (value.empty() || end != value.c_str() + value.size() || event.empty()) continue;  // "<not counted>"
        counts[event] = count;
    }
    return counts;
}

Result<std::unique_ptr<EventCounter>> EventCounter::start(pid_t pid, const std::vector<std::string>& events,
                                                          std::chrono::seconds timeout) {
    std::unique_ptr<EventCounter> counter(new EventCounter());
    counter->timeout_ = timeout;
    char dir[] = "/tmp/afbus-bench-perf-XXXXXX";
    if (!::mkdtemp(dir)) return failure(std::string("mkdtemp: ") + std::strerror(errno));
    counter->directory_ = dir;
    counter->output_path_ = counter->directory_ + "/stat.csv";

    auto control = make_pipe();
    auto acknowledge = make_pipe();
    if (!control) return failure(control.error());
    if (!acknowledge) return failure(acknowledge.error());
    std::string event_list;
    for (const auto& e : events) event_list += (event_list.empty() ? "" : ",") + e;
    const std::string control_arg =
        "fd:" + std::to_string(control->read.get()) + "," + std::to_string(acknowledge->write.get());
    const std::string pid_arg = std::to_string(pid);
    const std::string log_path = counter->directory_ + "/perf.log";

    const pid_t child = ::fork();
    if (child < 0) return failure(std::string("fork: ") + std::strerror(errno));
    if (child == 0) {
        // perf must inherit the two pipe ends it is told about; nothing else.
        ::fcntl(control->read.get(), F_SETFD, 0);
        ::fcntl(acknowledge->write.get(), F_SETFD, 0);
        const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (log >= 0) {
            ::dup2(log, STDOUT_FILENO);
            ::dup2(log, STDERR_FILENO);
        }
        ::execlp("perf", "perf", "stat", "-x", ",", "-e", event_list.c_str(), "-p", pid_arg.c_str(), "--control",
                 control_arg.c_str(), "-D", "-1", "-o", counter->output_path_.c_str(), static_cast<char*>(nullptr));
        const std::string why = std::string("cannot run perf (Debian package linux-perf): ") + std::strerror(errno) + "\n";
        (void)!::write(STDERR_FILENO, why.data(), why.size());
        ::_exit(127);
    }
    counter->perf_pid_ = child;
    counter->control_ = std::move(control->write);
    counter->acknowledge_ = std::move(acknowledge->read);
    // Our copies of perf's ends go: an early exit of perf then shows as end of file on the ack pipe.
    control->read.reset();
    acknowledge->write.reset();
    if (auto on = counter->command("enable"); !on)
        return failure("perf stat: " + on.error() + ": " + read_file(log_path));
    return counter;
}

Result<void> EventCounter::command(const char* what) {
    const std::string line = std::string(what) + "\n";
    if (::write(control_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        return failure(std::string("cannot send ") + what);
    pollfd p{acknowledge_.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(timeout_.count() * 1000));
    if (ready <= 0) return failure(std::string("no acknowledgement of ") + what);
    char answer[16];
    const ssize_t n = ::read(acknowledge_.get(), answer, sizeof answer);
    if (n < 3 || std::strncmp(answer, "ack", 3) != 0) return failure(std::string("perf did not acknowledge ") + what);
    return {};
}

Result<std::map<std::string, double>> EventCounter::stop() {
    auto off = command("disable");
    ::kill(perf_pid_, SIGINT);  // perf stat -p writes its counts when interrupted
    int status = 0;
    ::waitpid(perf_pid_, &status, 0);
    perf_pid_ = -1;
    if (!off) return failure(off.error());
    auto counts = parse_perf_stat_csv(read_file(output_path_));
    if (counts.empty()) return failure("perf stat counted nothing: " + read_file(directory_ + "/perf.log"));
    return counts;
}

EventCounter::~EventCounter() {
    if (perf_pid_ > 0) {
        ::kill(perf_pid_, SIGKILL);
        ::waitpid(perf_pid_, nullptr, 0);
    }
    if (!directory_.empty()) {
        ::unlink(output_path_.c_str());
        ::unlink((directory_ + "/perf.log").c_str());
        ::rmdir(directory_.c_str());
    }
}

}  // namespace afbus::bench
