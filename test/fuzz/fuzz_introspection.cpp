// afbus-xml2cpp's introspection parser (tools/xml2cpp/introspection.cpp) on arbitrary bytes, and the
// generator on whatever it accepts. Invariants: a refusal names a line and a reason; a model the parser
// accepted always generates both headers (the generator refuses only models that did not come from the
// parser).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "generator.hpp"
#include "introspection.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view xml(reinterpret_cast<const char*>(data), size);
    auto parsed = xml2cpp::parse_introspection(xml, "fuzz.xml");
    if (!parsed) {
        afbus::fuzz::check(!parsed.error().reason.empty(), "a refusal says why");
        return 0;
    }
    const xml2cpp::GeneratorInput input{"fuzz.xml", "fuzz"};
    afbus::fuzz::check(xml2cpp::generate_proxy_header(*parsed, input).has_value(),
                       "an accepted model generates a proxy");
    afbus::fuzz::check(xml2cpp::generate_adaptor_header(*parsed, input).has_value(),
                       "an accepted model generates an adaptor");
    return 0;
}
