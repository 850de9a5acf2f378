// C++ headers from the introspection model: for each interface a proxy class over afbus::Proxy (the
// client's side) or an adaptor class over afbus::InterfaceBuilder and afbus::Object (the service's side),
// in namespaces taken from the interface name (org.example.Calculator → org::example::CalculatorProxy,
// org::example::CalculatorAdaptor). docs/typed-api.md, "Generated bindings", shows what they look like.
#pragma once

#include <string>
#include <vector>

#include "afbus/expected.hpp"
#include "introspection.hpp"

namespace xml2cpp {

struct GeneratedHeader {
    std::string text;
    // What the header leaves out, one sentence each (a property type InterfaceBuilder cannot serve).
    std::vector<std::string> warnings;
};

struct GeneratorInput {
    std::string source_name;  // the XML file, named in the header's first line
    std::string tool_version;
};

// An Error (a sentence) only for a model that did not come from parse_introspection and holds an
// invalid type.
afbus::Expected<GeneratedHeader, std::string> generate_proxy_header(const IntrospectionData& data,
                                                                    const GeneratorInput& input);
afbus::Expected<GeneratedHeader, std::string> generate_adaptor_header(const IntrospectionData& data,
                                                                      const GeneratorInput& input);

}  // namespace xml2cpp
