#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <limits>

#include "afbus/keyring.hpp"
#include "afbus/sasl.hpp"
#include "sasl/sasl_line.hpp"
#include "sasl/sha1.hpp"

namespace afbus {

using sasl_detail::hex_decode;
using sasl_detail::hex_encode;
using sasl_detail::LineStatus;
using sasl_detail::trim;

namespace {

// The EXTERNAL authorization identity is a decimal uid string (the spec allows login names too,
// which we, like sd-bus, do not accept).
std::optional<uid_t> parse_uid(std::string_view identity) {
    if (identity.empty() || identity.size() > 10) return std::nullopt;
    if (!std::all_of(identity.begin(), identity.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    std::uint64_t value = 0;
    std::from_chars(identity.data(), identity.data() + identity.size(), value);
    if (value > std::numeric_limits<uid_t>::max()) return std::nullopt;
    return static_cast<uid_t>(value);
}

// dbus-daemon's server challenge: 128 random bits, hex-encoded.
constexpr std::size_t kServerChallengeBytes = 16;

std::optional<uid_t> lookup_user_in_passwd(const std::string& name) {
    long suggested = ::sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buffer(suggested > 0 ? static_cast<std::size_t>(suggested) : 4096);
    for (;;) {
        passwd entry{};
        passwd* found = nullptr;
        const int error = ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
        if (error == ERANGE && buffer.size() < (1u << 20)) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (error != 0 || !found) return std::nullopt;
        return found->pw_uid;
    }
}

// The file keyring of `uid`, for a server that was given no `cookie` function.
Expected<KeyringCookie, std::string> keyring_cookie(const SaslCookieConfig& config, uid_t uid,
                                                    std::string_view context) {
    auto home = config.home_directory ? config.home_directory(uid) : home_directory(uid);
    if (!home) return Unexpected(std::move(home).error());
    return Keyring(keyring_directory(*home), config.keyring).current(context);
}

}  // namespace

SaslServer::SaslServer(SaslServerConfig config) : config_(std::move(config)) {
    assert(sasl_detail::is_guid(config_.guid));
    assert(config_.max_line_length >= 64 && config_.max_rejections > 0);
    assert(!config_.cookie_sha1 || is_valid_cookie_context(config_.cookie_sha1->context));
    rejected_line_ = "REJECTED";
    std::vector<SaslMechanism> listed;
    for (SaslMechanism mechanism : config_.mechanisms) {
        if (!offers(mechanism) || std::find(listed.begin(), listed.end(), mechanism) != listed.end())
            continue;
        listed.push_back(mechanism);
        rejected_line_ += ' ';
        rejected_line_ += to_string(mechanism);
    }
    rejected_line_ += "\r\n";
}

bool SaslServer::offers(SaslMechanism mechanism) const {
    if (std::find(config_.mechanisms.begin(), config_.mechanisms.end(), mechanism) ==
        config_.mechanisms.end())
        return false;
    switch (mechanism) {
        case SaslMechanism::External:
            return true;
        case SaslMechanism::Anonymous:
            return config_.allow_anonymous;
        case SaslMechanism::DbusCookieSha1:
            return config_.cookie_sha1.has_value();
    }
    return false;
}

std::size_t SaslServer::feed(std::string_view input) {
    std::size_t consumed = 0;
    if (state_ == State::WaitingForNul && !input.empty()) {
        consumed = 1;
        if (input[0] != '\0') {
            fail(SaslError::MissingNulByte);
            return consumed;
        }
        state_ = State::WaitingForAuth;
    }
    consumed += sasl_detail::feed_lines(
        line_buffer_, input.substr(consumed), config_.max_line_length,
        [this] { return authenticated() || failed(); }, [this](std::string_view line) { handle_line(line); },
        [this](LineStatus status) {
            fail(status == LineStatus::TooLong ? SaslError::LineTooLong : SaslError::InvalidByte);
        });
    return consumed;
}

std::string SaslServer::take_output() {
    return std::exchange(output_, {});
}

void SaslServer::handle_line(std::string_view line) {
    const auto command = sasl_detail::split_command(line);
    if (command.name == "AUTH") {
        handle_auth(command.arguments);
    } else if (command.name == "DATA") {
        handle_data(command.arguments);
    } else if (command.name == "BEGIN") {
        if (state_ == State::WaitingForBegin) {
            state_ = State::Authenticated;
        } else {
            fail(SaslError::BeginBeforeOk);
        }
    } else if (command.name == "CANCEL") {
        if (state_ == State::WaitingForAuth) {
            send_error("Not currently in an auth conversation");
        } else {
            reject();
        }
    } else if (command.name == "ERROR") {
        reject();
    } else if (command.name == "NEGOTIATE_UNIX_FD") {
        if (state_ != State::WaitingForBegin) {
            send_error("Need to authenticate first");
        } else if (!config_.unix_fd_possible) {
            send_error("Unix fd passing is not supported on this transport");
        } else {
            unix_fd_agreed_ = true;
            output_ += "AGREE_UNIX_FD\r\n";
        }
    } else {
        send_error("Unknown command");
    }
}

void SaslServer::handle_auth(std::string_view arguments) {
    if (state_ == State::WaitingForData) return send_error("Sent AUTH while another AUTH in progress");
    if (state_ == State::WaitingForBegin) return send_error("Sent AUTH while expecting BEGIN");

    arguments = trim(arguments);
    const std::size_t space = arguments.find(' ');
    const std::string_view name = arguments.substr(0, space);
    const std::string_view initial_hex =
        space == std::string_view::npos ? std::string_view() : trim(arguments.substr(space + 1));

    const auto mechanism = sasl_mechanism_from_name(name);
    if (!mechanism || !offers(*mechanism)) return reject();

    std::optional<std::string> initial_response;
    if (!initial_hex.empty()) {
        initial_response = hex_decode(initial_hex);
        if (!initial_response) return send_error("Invalid hex encoding");
    }
    mechanism_ = *mechanism;
    apply(start_mechanism(*mechanism, initial_response));
}

void SaslServer::handle_data(std::string_view arguments) {
    if (state_ == State::WaitingForAuth) return send_error("Not currently in an auth conversation");
    if (state_ == State::WaitingForBegin) return send_error("Sent DATA while expecting BEGIN");

    const auto response = hex_decode(trim(arguments));
    if (!response) return send_error("Invalid hex encoding");
    apply(continue_mechanism(*response));
}

SaslServer::Step SaslServer::start_mechanism(SaslMechanism mechanism,
                                             std::optional<std::string_view> initial_response) {
    switch (mechanism) {
        case SaslMechanism::External:
            // No initial response: ask for the identity with an empty challenge, as dbus-daemon does.
            if (!initial_response) return {Step::Kind::Continue, {}};
            return external_step(*initial_response);
        case SaslMechanism::Anonymous:
            // The RFC 4505 trace is informational only; it proves nothing.
            authenticated_uid_.reset();
            return {Step::Kind::Ok, {}};
        case SaslMechanism::DbusCookieSha1:
            return cookie_challenge(initial_response);
    }
    return {Step::Kind::Reject, {}};
}

SaslServer::Step SaslServer::continue_mechanism(std::optional<std::string_view> response) {
    if (mechanism_ == SaslMechanism::External) return external_step(response.value_or(""));
    if (mechanism_ == SaslMechanism::DbusCookieSha1 && cookie_) return cookie_answer(response.value_or(""));
    return {Step::Kind::Reject, {}};
}

SaslServer::Step SaslServer::cookie_reject(std::string problem) {
    mechanism_problem_ = std::move(problem);
    return {Step::Kind::Reject, {}};
}

SaslServer::Step SaslServer::cookie_challenge(std::optional<std::string_view> identity) {
    const SaslCookieConfig& cookie_config = *config_.cookie_sha1;
    // The identity is a login name or a decimal uid. Without one there is nobody to look up: dbus-daemon
    // rejects at once rather than asking with an empty challenge, and so do we.
    if (!identity || identity->empty()) return cookie_reject("no identity");
    std::optional<uid_t> uid;
    if (std::all_of(identity->begin(), identity->end(), [](char c) { return c >= '0' && c <= '9'; })) {
        uid = parse_uid(*identity);
    } else if (identity->size() <= 256 && std::all_of(identity->begin(), identity->end(), [](char c) {
                   return c > ' ' && c < 0x7f;
               })) {
        const std::string name(*identity);
        uid = cookie_config.lookup_user ? cookie_config.lookup_user(name) : lookup_user_in_passwd(name);
    }
    if (!uid) return cookie_reject("unknown user");
    if (*uid != cookie_config.server_uid) return cookie_reject("not the user the server runs as");

    auto cookie = cookie_config.cookie ? cookie_config.cookie(*uid, cookie_config.context)
                                       : keyring_cookie(cookie_config, *uid, cookie_config.context);
    if (!cookie) return cookie_reject(std::move(cookie).error());
    auto random = cookie_config.random_bytes ? cookie_config.random_bytes(kServerChallengeBytes)
                                             : sasl_detail::random_bytes(kServerChallengeBytes);
    if (!random) return cookie_reject(std::move(random).error());
    if (random->empty()) return cookie_reject("empty random challenge");

    cookie_ = CookieChallenge{*uid, hex_encode(*random), std::move(cookie->secret)};
    mechanism_problem_.clear();
    return {Step::Kind::Continue,
            cookie_config.context + " " + std::to_string(cookie->id) + " " + cookie_->server_challenge};
}

SaslServer::Step SaslServer::cookie_answer(std::string_view response) {
    // "<client challenge> <sha1 hex>", split at the first blank; further blanks before the hash are
    // skipped, as libdbus does.
    const std::size_t blank = response.find_first_of(" \t");
    if (blank == std::string_view::npos) return cookie_reject("no blank in the response");
    const std::string_view client_challenge = response.substr(0, blank);
    const std::size_t hash_start = response.find_first_not_of(" \t", blank);
    const std::string_view client_hash =
        hash_start == std::string_view::npos ? std::string_view() : response.substr(hash_start);
    if (client_challenge.empty() || client_hash.empty()) return cookie_reject("empty challenge or hash");

    std::string hashed = cookie_->server_challenge;
    hashed += ':';
    hashed += client_challenge;
    hashed += ':';
    hashed += cookie_->secret;
    if (!sasl_detail::constant_time_equal(Sha1::hex_digest(hashed), client_hash))
        return cookie_reject("wrong hash");
    authenticated_uid_ = cookie_->uid;
    cookie_.reset();
    return {Step::Kind::Ok, {}};
}

SaslServer::Step SaslServer::external_step(std::string_view identity) {
    if (!config_.peer_uid) return {Step::Kind::Reject, {}};
    // An empty identity means "whoever my credentials say I am".
    if (!identity.empty() && parse_uid(identity) != config_.peer_uid) return {Step::Kind::Reject, {}};
    authenticated_uid_ = config_.peer_uid;
    return {Step::Kind::Ok, {}};
}

void SaslServer::apply(Step step) {
    switch (step.kind) {
        case Step::Kind::Continue:
            output_ += step.payload.empty() ? "DATA\r\n" : "DATA " + hex_encode(step.payload) + "\r\n";
            state_ = State::WaitingForData;
            break;
        case Step::Kind::Ok:
            output_ += "OK " + config_.guid + "\r\n";
            state_ = State::WaitingForBegin;
            break;
        case Step::Kind::Reject:
            reject();
            break;
        case Step::Kind::Error:
            send_error(step.payload);
            break;
    }
}

void SaslServer::reject() {
    output_ += rejected_line_;
    state_ = State::WaitingForAuth;
    mechanism_.reset();
    authenticated_uid_.reset();
    cookie_.reset();
    unix_fd_agreed_ = false;
    if (++rejections_ >= config_.max_rejections) fail(SaslError::TooManyRejections);
}

void SaslServer::send_error(std::string_view explanation) {
    output_ += "ERROR \"";
    output_ += explanation;
    output_ += "\"\r\n";
}

void SaslServer::fail(SaslError error) {
    state_ = State::Failed;
    error_ = error;
    mechanism_.reset();
    authenticated_uid_.reset();
    cookie_.reset();
    unix_fd_agreed_ = false;
    line_buffer_.clear();
}

}  // namespace afbus
