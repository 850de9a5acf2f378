#include "config.hpp"

#include <expat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "policy_compiler.hpp"
#include "text_file.hpp"

namespace afbus::daemon {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxIncludeDepth = 32;

const std::set<std::string, std::less<>> kRuleAttributes = {
    "send_interface", "send_member", "send_error", "send_destination", "send_destination_prefix",
    "send_path", "send_type", "send_requested_reply", "send_broadcast", "receive_interface",
    "receive_member", "receive_error", "receive_sender", "receive_path", "receive_type",
    "receive_requested_reply", "eavesdrop", "own", "own_prefix", "user", "group", "log", "max_fds", "min_fds",
};

std::string trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    const auto last = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(first, last - first + 1));
}

class Parser {
public:
    Parser(BusConfig& config, std::set<std::string>& open_files, int depth, IncludedirErrors includedir_errors)
        : config_(config), open_files_(open_files), depth_(depth), includedir_errors_(includedir_errors) {}

    Expected<void, ConfigError> parse(const std::string& text, const std::string& file, const std::string& directory) {
        file_ = file;
        directory_ = directory;
        XML_Parser parser = XML_ParserCreate(nullptr);
        parser_ = parser;
        XML_SetUserData(parser, this);
        XML_SetElementHandler(parser, &Parser::on_start, &Parser::on_end);
        XML_SetCharacterDataHandler(parser, &Parser::on_text);
        const bool ok = XML_Parse(parser, text.data(), static_cast<int>(text.size()), 1) == XML_STATUS_OK;
        if (!ok && !error_) {
            error_ = ConfigError{file_, static_cast<int>(XML_GetCurrentLineNumber(parser)),
                                 XML_ErrorString(XML_GetErrorCode(parser))};
        }
        XML_ParserFree(parser);
        if (error_) return Unexpected(*error_);
        if (!saw_root_) return Unexpected(ConfigError{file_, 1, "no <busconfig> element"});
        return {};
    }

private:
    static void on_start(void* data, const char* name, const char** attrs) {
        static_cast<Parser*>(data)->start(name, attrs);
    }
    static void on_end(void* data, const char* name) { static_cast<Parser*>(data)->end(name); }
    static void on_text(void* data, const char* text, int length) {
        auto* p = static_cast<Parser*>(data);
        if (!p->stack_.empty()) p->text_.append(text, static_cast<std::size_t>(length));
    }

    int line() const { return static_cast<int>(XML_GetCurrentLineNumber(parser_)); }

    void fail(std::string reason) {
        if (!error_) error_ = ConfigError{file_, line(), std::move(reason)};
        XML_StopParser(parser_, XML_FALSE);
    }

    using Attributes = std::vector<std::pair<std::string, std::string>>;

    bool only_attributes(const std::string& element, const Attributes& attrs, std::initializer_list<std::string_view> allowed) {
        for (const auto& [k, v] : attrs) {
            if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
                fail("Attribute \"" + k + "\" is invalid on <" + element + "> element in this context");
                return false;
            }
        }
        return true;
    }

    static std::optional<std::string> attribute(const Attributes& attrs, std::string_view name) {
        for (const auto& [k, v] : attrs)
            if (k == name) return v;
        return std::nullopt;
    }

    bool yes_no(const Attributes& attrs, std::string_view name, bool& out) {
        auto v = attribute(attrs, name);
        if (!v) return true;
        if (*v == "yes") out = true;
        else if (*v == "no") out = false;
        else {
            // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict) on "\"" + std::string(...).
            std::string reason = "\"";
            reason += name;
            reason += "\" attribute must have value \"yes\" or \"no\"";
            fail(reason);
            return false;
        }
        return true;
    }

    void start(const std::string& name, const char** raw) {
        if (error_) return;
        Attributes attrs;
        for (int i = 0; raw[i]; i += 2) attrs.emplace_back(raw[i], raw[i + 1]);
        text_.clear();
        const std::string parent = stack_.empty() ? "" : stack_.back();
        stack_.push_back(name);
        attributes_.push_back(attrs);

        if (parent.empty()) {
            if (name != "busconfig") return fail("Root element must be <busconfig>, not <" + name + ">");
            saw_root_ = true;
            only_attributes(name, attrs, {});
            return;
        }
        if (parent == "busconfig") {
            static const std::set<std::string, std::less<>> kNoAttributes = {
                "user", "type", "fork", "keep_umask", "syslog", "listen", "pidfile", "auth", "allow_anonymous",
                "servicedir", "standard_session_servicedirs", "standard_system_servicedirs", "servicehelper",
                "includedir", "selinux"};
            if (kNoAttributes.count(name)) {
                only_attributes(name, attrs, {});
                return;
            }
            if (name == "include") {
                only_attributes(name, attrs, {"ignore_missing", "if_selinux_enabled", "selinux_root_relative"});
                return;
            }
            if (name == "limit") {
                if (!only_attributes(name, attrs, {"name"})) return;
                if (!attribute(attrs, "name")) fail("<limit> element must have a \"name\" attribute");
                return;
            }
            if (name == "apparmor") {
                if (!only_attributes(name, attrs, {"mode"})) return;
                auto mode = attribute(attrs, "mode");
                if (mode && *mode != "enabled" && *mode != "disabled" && *mode != "required")
                    return fail("AppArmor mode \"" + *mode + "\" is not valid");
                config_.apparmor_mode = mode.value_or("enabled");
                return;
            }
            if (name == "policy") return start_policy(attrs);
            return fail("Element <" + name + "> not allowed inside <" + parent + "> in configuration file");
        }
        if (parent == "policy") {
            if (name != "allow" && name != "deny")
                return fail("Element <" + name + "> not allowed inside <policy> in configuration file");
            PolicyRule rule;
            rule.allow = name == "allow";
            rule.file = file_;
            rule.line = line();
            for (const auto& [k, v] : attrs) {
                if (!kRuleAttributes.count(k))
                    return fail("Attribute \"" + k + "\" is invalid on <" + name + "> element in this context");
            }
            if (attrs.empty()) return fail("Element <" + name + "> must have one or more attributes");
            rule.attributes = attrs;
            config_.policies.back().rules.push_back(std::move(rule));
            return;
        }
        if (parent == "selinux") {
            if (name != "associate")
                return fail("Element <" + name + "> not allowed inside <selinux> in configuration file");
            if (!only_attributes(name, attrs, {"own", "context"})) return;
            config_.has_selinux = true;
            return;
        }
        fail("Element <" + name + "> not allowed inside <" + parent + "> in configuration file");
    }

    void start_policy(const Attributes& attrs) {
        if (!only_attributes("policy", attrs, {"context", "user", "group", "at_console"})) return;
        if (attrs.size() != 1) return fail("<policy> element must have exactly one of (context|user|group|at_console)");
        Policy policy;
        const auto& [key, value] = attrs.front();
        if (key == "context") {
            if (value == "default") policy.kind = Policy::Kind::Default;
            else if (value == "mandatory") policy.kind = Policy::Kind::Mandatory;
            else return fail("context attribute on <policy> must have the value \"default\" or \"mandatory\", not \"" + value + "\"");
        } else if (key == "user") {
            policy.kind = Policy::Kind::User;
            policy.who = value;
        } else if (key == "group") {
            policy.kind = Policy::Kind::Group;
            policy.who = value;
        } else {
            if (value == "true") policy.kind = Policy::Kind::AtConsole;
            else if (value == "false") policy.kind = Policy::Kind::NotAtConsole;
            else return fail("at_console attribute on <policy> must have the value \"true\" or \"false\"");
        }
        config_.policies.push_back(std::move(policy));
    }

    std::string resolve_path(const std::string& path) const {
        if (path.empty() || path[0] == '/') return path;
        return (fs::path(directory_) / path).string();
    }

    void end(const std::string& name) {
        if (error_) return;
        const std::string text = trim(text_);
        text_.clear();
        const Attributes attrs = attributes_.back();
        stack_.pop_back();
        attributes_.pop_back();
        if (stack_.size() != 1) return;  // only direct children of <busconfig> carry values

        if (name == "user") config_.user = text;
        else if (name == "type") config_.type = text;
        else if (name == "fork") config_.fork = true;
        else if (name == "keep_umask") config_.keep_umask = true;
        else if (name == "syslog") config_.syslog = true;
        else if (name == "allow_anonymous") config_.allow_anonymous = true;
        else if (name == "listen") {
            if (text.empty()) return fail("<listen> element must contain an address");
            config_.listen.push_back(text);
        } else if (name == "pidfile") config_.pidfile = text;
        else if (name == "auth") {
            if (text.empty()) return fail("<auth> element must contain a mechanism name");
            config_.auth.push_back(text);
        } else if (name == "servicedir") {
            config_.servicedirs.push_back({resolve_path(text), ServiceDir::Kind::Configured});
        } else if (name == "standard_session_servicedirs") {
            config_.servicedirs.push_back({"", ServiceDir::Kind::StandardSession});
        } else if (name == "standard_system_servicedirs") {
            config_.servicedirs.push_back({"", ServiceDir::Kind::StandardSystem});
        } else if (name == "servicehelper") config_.servicehelper = resolve_path(text);
        else if (name == "limit") end_limit(*attribute(attrs, "name"), text);
        else if (name == "include") end_include(text, attrs);
        else if (name == "includedir") end_includedir(resolve_path(text));
    }

    void end_limit(const std::string& name, const std::string& text) {
        char* end = nullptr;
        errno = 0;
        const long long value = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno == ERANGE) return fail("<limit name=\"" + name + "\"> must contain a number, not \"" + text + "\"");
        if (!config_.limits.set(name, value)) return fail("There is no limit called \"" + name + "\"");
    }

    void end_include(const std::string& text, const Attributes& attrs) {
        bool ignore_missing = false, if_selinux = false, selinux_relative = false;
        if (!yes_no(attrs, "ignore_missing", ignore_missing) || !yes_no(attrs, "if_selinux_enabled", if_selinux) ||
            !yes_no(attrs, "selinux_root_relative", selinux_relative))
            return;
        if (if_selinux || selinux_relative) return;  // afbus does not run under SELinux mediation
        const std::string path = resolve_path(text);
        if (!fs::exists(path)) {
            if (ignore_missing) return;
            return fail("Failed to open \"" + path + "\": No such file or directory");
        }
        include_file(path);
    }

    void end_includedir(const std::string& dir) {
        config_.includedirs.push_back(dir);
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) return;  // a missing includedir is not an error (dbus-daemon agrees)
        std::vector<std::string> files;
        for (const auto& entry : fs::directory_iterator(dir, ec)) {
            if (entry.path().extension() == ".conf" && entry.is_regular_file(ec)) files.push_back(entry.path().string());
        }
        std::sort(files.begin(), files.end());
        for (const std::string& f : files) {
            if (includedir_errors_ == IncludedirErrors::Fail) {
                include_file(f);
                if (error_) return;
                continue;
            }
            // Whatever the file added before its error goes with it: the configuration is as if it
            // were not there.
            BusConfig without_it = config_;
            if (auto r = parse_included(f); !r) {
                config_ = std::move(without_it);
                config_.skipped_files.push_back(r.error());
            }
        }
    }

    void include_file(const std::string& path) {
        if (auto r = parse_included(path); !r) {
            if (!error_) error_ = r.error();
            XML_StopParser(parser_, XML_FALSE);
        }
    }

    // Reads `path` into config_ (errors in it are the file's own, with its name and line).
    Expected<void, ConfigError> parse_included(const std::string& path) {
        const auto here = [this](std::string reason) { return Unexpected(ConfigError{file_, line(), std::move(reason)}); };
        std::error_code ec;
        const std::string canonical = fs::weakly_canonical(path, ec).string();
        if (open_files_.count(canonical)) return here("Circular inclusion of file \"" + path + "\"");
        if (depth_ + 1 > kMaxIncludeDepth) return here("Includes nested too deeply at \"" + path + "\"");
        auto text = read_text_file(path);
        if (!text) return here("Failed to open \"" + path + "\": " + std::strerror(text.error()));
        open_files_.insert(canonical);
        config_.files.push_back(path);
        Parser nested(config_, open_files_, depth_ + 1, includedir_errors_);
        auto r = nested.parse(*text, path, fs::path(path).parent_path().string());
        open_files_.erase(canonical);
        return r;
    }

    BusConfig& config_;
    std::set<std::string>& open_files_;
    int depth_;
    IncludedirErrors includedir_errors_;
    XML_Parser parser_ = nullptr;
    std::string file_, directory_;
    std::vector<std::string> stack_;
    std::vector<Attributes> attributes_;
    std::string text_;
    bool saw_root_ = false;
    std::optional<ConfigError> error_;
};

}  // namespace

std::string ConfigError::to_string() const {
    return file + ":" + std::to_string(line) + ": " + reason;
}

Expected<BusConfig, ConfigError> parse_config(const std::string& text, const std::string& name,
                                              const std::string& directory, IncludedirErrors includedir_errors) {
    BusConfig config;
    std::set<std::string> open_files;
    Parser parser(config, open_files, 0, includedir_errors);
    config.files.push_back(name);
    if (auto r = parser.parse(text, name, directory); !r) return Unexpected(r.error());
    auto compiled = policy::compile_policy(config.policies);
    if (!compiled) return Unexpected(ConfigError{compiled.error().file, compiled.error().line, compiled.error().reason});
    config.policy_image = std::move(compiled->image);
    config.policy_warnings = std::move(compiled->warnings);
    return config;
}

Expected<BusConfig, ConfigError> load_config(const std::string& path, IncludedirErrors includedir_errors) {
    auto text = read_text_file(path);
    if (!text) return Unexpected(ConfigError{path, 0, std::string("Failed to open: ") + std::strerror(text.error())});
    return parse_config(*text, path, fs::path(path).parent_path().string(), includedir_errors);
}

const std::string& builtin_session_config() {
    // Debian's session.conf, as afbus's own default: the same directories, the same limits.
    static const std::string kConfig = R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <standard_session_servicedirs />
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <include ignore_missing="yes">/etc/dbus-1/session.conf</include>
  <includedir>/usr/share/dbus-1/session.d</includedir>
  <includedir>/etc/dbus-1/session.d</includedir>
  <include ignore_missing="yes">/etc/dbus-1/session-local.conf</include>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_incoming_unix_fds">250000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_outgoing_unix_fds">250000000</limit>
  <limit name="max_message_size">1000000000</limit>
  <limit name="service_start_timeout">120000</limit>
  <limit name="auth_timeout">240000</limit>
  <limit name="pending_fd_timeout">150000</limit>
  <limit name="max_completed_connections">100000</limit>
  <limit name="max_incomplete_connections">10000</limit>
  <limit name="max_connections_per_user">100000</limit>
  <limit name="max_pending_service_starts">10000</limit>
  <limit name="max_names_per_connection">50000</limit>
  <limit name="max_match_rules_per_connection">50000</limit>
  <limit name="max_replies_per_connection">50000</limit>
</busconfig>
)";
    return kConfig;
}

const std::string& builtin_system_config() {
    // Debian's system.conf (policy details come from the system.d directories it includes).
    static const std::string kConfig = R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <user>messagebus</user>
  <fork/>
  <standard_system_servicedirs/>
  <servicehelper>/usr/lib/dbus-1.0/dbus-daemon-launch-helper</servicehelper>
  <pidfile>/run/dbus/pid</pidfile>
  <syslog/>
  <auth>EXTERNAL</auth>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <policy context="default">
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" />
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Containers1"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <include ignore_missing="yes">/etc/dbus-1/system.conf</include>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>/etc/dbus-1/system.d</includedir>
  <include ignore_missing="yes">/etc/dbus-1/system-local.conf</include>
  <include if_selinux_enabled="yes" selinux_root_relative="yes">contexts/dbus_contexts</include>
</busconfig>
)";
    return kConfig;
}

}  // namespace afbus::daemon
