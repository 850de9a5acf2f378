// afbus-xml2cpp: typed C++ proxies and adaptors for libafbus from D-Bus introspection XML, with the
// command line of sdbus-c++-xml2cpp (man/afbus-xml2cpp.1).
//
//   afbus-xml2cpp [--proxy=FILE] [--adaptor=FILE] [--verbose] [INPUT.xml]
//
// Exit status 0 when every requested header was written, 1 otherwise (with a message on stderr naming
// the file, the line and the reason for a bad input).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "generator.hpp"
#include "introspection.hpp"

namespace {

constexpr std::string_view kUsage =
    "Usage: afbus-xml2cpp [OPTION]... [FILE]\n"
    "Generates C++ headers for libafbus from a D-Bus introspection XML FILE (standard input if none).\n"
    "\n"
    "  --proxy=FILE     write the proxy classes (the client's side) to FILE\n"
    "  --adaptor=FILE   write the adaptor classes (the service's side) to FILE\n"
    "  --verbose        say what is being done\n"
    "  -h, --help       print this help and exit\n"
    "  --version        print the version and exit\n"
    "\n"
    "Exit status is 0 when every requested header was written, 1 otherwise.\n";

struct Options {
    std::optional<std::string> proxy;
    std::optional<std::string> adaptor;
    std::optional<std::string> input;
    bool verbose = false;
};

int usage_error(const std::string& why) {
    std::cerr << "afbus-xml2cpp: " << why << "\n" << kUsage;
    return 1;
}

// Writes next to `path` and renames, so that a build never sees half a header.
bool write_file(const std::string& path, const std::string& text) {
    const std::string temporary = path + ".tmp";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        if (!out) {
            std::cerr << "afbus-xml2cpp: cannot write " << temporary << ": " << std::strerror(errno) << '\n';
            std::remove(temporary.c_str());
            return false;
        }
    }
    if (std::rename(temporary.c_str(), path.c_str()) != 0) {
        std::cerr << "afbus-xml2cpp: cannot write " << path << ": " << std::strerror(errno) << '\n';
        std::remove(temporary.c_str());
        return false;
    }
    return true;
}

bool generate(const std::optional<std::string>& path, const char* side,
              const afbus::Expected<xml2cpp::GeneratedHeader, std::string>& header, bool verbose) {
    if (!path) return true;
    if (!header) {
        std::cerr << "afbus-xml2cpp: cannot generate the " << side << ": " << header.error() << '\n';
        return false;
    }
    for (const auto& warning : header->warnings) std::cerr << "afbus-xml2cpp: warning: " << warning << '\n';
    if (verbose) std::cerr << "afbus-xml2cpp: writing the " << side << " to " << *path << '\n';
    return write_file(*path, header->text);
}

}  // namespace

int main(int argc, char* argv[]) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value_of = [&](std::string_view option) -> std::optional<std::string> {
            if (arg.starts_with(option) && arg.size() > option.size() && arg[option.size()] == '=')
                return std::string(arg.substr(option.size() + 1));
            if (arg == option && i + 1 < argc) return std::string(argv[++i]);
            return std::nullopt;
        };
        if (arg == "-h" || arg == "--help") {
            std::cout << kUsage;
            return 0;
        }
        if (arg == "--version") {
            std::cout << "afbus-xml2cpp " << AFBUS_XML2CPP_VERSION << '\n';
            return 0;
        }
        if (arg == "--verbose") {
            options.verbose = true;
        } else if (arg.starts_with("--proxy")) {
            options.proxy = value_of("--proxy");
            if (!options.proxy || options.proxy->empty()) return usage_error("--proxy needs a file name");
        } else if (arg.starts_with("--adaptor")) {
            options.adaptor = value_of("--adaptor");
            if (!options.adaptor || options.adaptor->empty())
                return usage_error("--adaptor needs a file name");
        } else if (arg.starts_with("-") && arg != "-") {
            return usage_error("unknown option " + std::string(arg));
        } else if (options.input) {
            return usage_error("more than one input file");
        } else {
            options.input = std::string(arg);
        }
    }
    if (!options.proxy && !options.adaptor)
        return usage_error("nothing to generate: give --proxy or --adaptor");

    std::string xml;
    std::string source_name = "<stdin>";
    if (!options.input || *options.input == "-") {
        xml.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
        source_name = *options.input;
        std::ifstream in(source_name, std::ios::binary);
        if (!in) {
            std::cerr << "afbus-xml2cpp: cannot read " << source_name << ": " << std::strerror(errno) << '\n';
            return 1;
        }
        std::ostringstream contents;
        contents << in.rdbuf();
        xml = std::move(contents).str();
    }
    if (options.verbose) std::cerr << "afbus-xml2cpp: reading " << source_name << '\n';

    auto data = xml2cpp::parse_introspection(xml, source_name);
    if (!data) {
        std::cerr << data.error().message() << '\n';
        return 1;
    }
    // The header names the file without its directory: a build directory's path would make the output
    // depend on where it was built.
    const auto slash = source_name.rfind('/');
    const xml2cpp::GeneratorInput input{
        slash == std::string::npos ? source_name : source_name.substr(slash + 1), AFBUS_XML2CPP_VERSION};
    if (options.proxy &&
        !generate(options.proxy, "proxy", xml2cpp::generate_proxy_header(*data, input), options.verbose))
        return 1;
    if (options.adaptor && !generate(options.adaptor, "adaptor",
                                     xml2cpp::generate_adaptor_header(*data, input), options.verbose))
        return 1;
    return 0;
}
