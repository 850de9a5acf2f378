#include "kernel_state.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace afbusctl {

namespace {

std::vector<std::string> split_blanks(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    return words;
}

std::optional<long long> number(const std::string& text) {
    if (text.empty()) return std::nullopt;
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (*end != '\0') return std::nullopt;
    return v;
}

}  // namespace

KernelState read_kernel_state(const std::string& sysfs_root, const std::string& procfs_root) {
    KernelState state;
    struct stat info {};
    state.loaded = ::stat((sysfs_root + "/module/af_bus").c_str(), &info) == 0 && S_ISDIR(info.st_mode);
    if (!state.loaded) return state;

    std::ifstream family_file(sysfs_root + "/module/af_bus/parameters/family");
    std::string family_text;
    if (!family_file || !std::getline(family_file, family_text)) {
        state.family_problem = "its family parameter cannot be read";
    } else if (auto n = number(family_text); n && *n >= 1 && *n <= 255) {
        state.family = static_cast<int>(*n);
    } else {
        state.family_problem = "its family parameter is not a family number: " + family_text;
    }

    // "protocol  size sockets  memory press ..." and one line per protocol.
    std::ifstream protocols(procfs_root + "/net/protocols");
    std::string header;
    if (!std::getline(protocols, header)) return state;
    const auto columns = split_blanks(header);
    for (std::string line; std::getline(protocols, line);) {
        const auto cells = split_blanks(line);
        if (cells.empty() || cells[0] != "AF_BUS") continue;
        for (std::size_t i = 0; i < columns.size() && i < cells.size(); ++i) {
            if (columns[i] == "sockets") state.sockets = number(cells[i]);
            else if (columns[i] == "memory") state.memory = number(cells[i]);
        }
    }
    return state;
}

std::string format_kernel_state(const KernelState& state, JsonMode json) {
    if (json != JsonMode::Off) {
        Json out = Json::object();
        out.add("module", Json::string(state.loaded ? "loaded" : "not-loaded"));
        out.add("family", state.family ? Json::integer(*state.family) : Json::null());
        out.add("sockets", state.sockets ? Json::integer(*state.sockets) : Json::null());
        out.add("memory", state.memory && *state.memory >= 0 ? Json::integer(*state.memory) : Json::null());
        return out.dump(json) + "\n";
    }
    std::string out = "Module=" + std::string(state.loaded ? "loaded" : "not-loaded") + "\n";
    if (!state.loaded) return out;
    out += "Family=" + (state.family ? std::to_string(*state.family) : "n/a (" + state.family_problem + ")") + "\n";
    if (state.sockets) out += "Sockets=" + std::to_string(*state.sockets) + "\n";
    if (state.memory && *state.memory >= 0) out += "Memory=" + std::to_string(*state.memory) + "\n";
    return out;
}

int run_kernel(const CommandLine& command_line) {
    if (!command_line.arguments.empty()) {
        std::fprintf(stderr, "kernel takes no arguments.\n");
        return 1;
    }
    const KernelState state = read_kernel_state();
    const std::string text = format_kernel_state(state, command_line.json);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return state.loaded ? 0 : 1;
}

}  // namespace afbusctl
