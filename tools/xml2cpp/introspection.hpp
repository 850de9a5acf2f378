// Introspection XML (the D-Bus specification's "Introspection Data Format") read into a model of its
// interfaces: methods with their in- and out-arguments, signals, properties and the standard annotations.
// Sans-I/O: the caller reads the file and names it, so the parser is tested on strings.
//
// Everything the generator relies on is checked here, so that a bad file fails with "FILE:LINE: reason"
// rather than producing a header that does not compile: names present and valid, every type a single
// complete D-Bus type, a property's access one of read, write, readwrite. Elements this tool does not use
// (<doc:doc>, foreign annotations) are skipped.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"

namespace xml2cpp {

struct Annotation {
    std::string name;
    std::string value;
};

struct Argument {
    std::string name;  // may be empty: the XML need not name arguments
    std::string type;  // one single complete type
};

struct Method {
    std::string name;
    std::vector<Argument> in;
    std::vector<Argument> out;
    std::vector<Annotation> annotations;
    bool deprecated = false;  // org.freedesktop.DBus.Deprecated on the method (the interface has its own)
    bool no_reply = false;    // org.freedesktop.DBus.Method.NoReply
    bool server_async =
        false;  // org.freedesktop.DBus.Method.Async = "server" or "clientserver" (sdbus-c++'s)
};

struct Signal {
    std::string name;
    std::vector<Argument> arguments;
    std::vector<Annotation> annotations;
    bool deprecated = false;
};

struct Property {
    enum class Access { Read, Write, ReadWrite };
    std::string name;
    std::string type;
    Access access = Access::Read;
    std::vector<Annotation> annotations;
    bool deprecated = false;
    [[nodiscard]] bool readable() const noexcept { return access != Access::Write; }
    [[nodiscard]] bool writable() const noexcept { return access != Access::Read; }
};

struct Interface {
    std::string name;
    std::vector<Method> methods;
    std::vector<Signal> signals;
    std::vector<Property> properties;
    std::vector<Annotation> annotations;
    bool deprecated = false;
};

struct IntrospectionData {
    // In document order, from every <node>; an interface described twice (by two nodes) is kept once.
    std::vector<Interface> interfaces;
};

struct ParseError {
    std::string file;
    std::size_t line = 0;
    std::string reason;
    // "FILE:LINE: reason", what the command line prints.
    [[nodiscard]] std::string message() const;
};

// Reads `xml`; `file` only names it in errors.
afbus::Expected<IntrospectionData, ParseError> parse_introspection(std::string_view xml,
                                                                   std::string_view file);

}  // namespace xml2cpp
