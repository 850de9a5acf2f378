// Parses arbitrary text as a busconfig document and compiles its policy. Either the whole thing is
// refused with a file, line and reason, or the compiled image loads. Documents that include other files
// are skipped: the parser would read whatever the filesystem holds.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config.hpp"
#include "fuzz_check.hpp"
#include "policy_engine.hpp"

using afbus::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    if (text.find("include") != std::string::npos) return 0;
    auto config = afbus::daemon::parse_config(text, "fuzz.conf", "/nonexistent");
    if (!config) {
        check(!config.error().reason.empty(), "an error without a reason");
        check(config.error().file == "fuzz.conf", "an error naming another file");
        return 0;
    }
    auto engine = afbus::policy::PolicyEngine::load(config->policy_image);
    check(engine.has_value(), "the compiler produced an image the loader refuses");
    return 0;
}
