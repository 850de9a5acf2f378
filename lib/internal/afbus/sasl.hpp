// The D-Bus authentication conversation (SASL profile of the D-Bus specification) as two state
// machines that do no I/O: bytes received go in through feed(), bytes to send come out of
// take_output(). The caller owns the socket, credentials and timeouts. See docs/sasl-and-addresses.md.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/keyring.hpp"
#include "afbus/sasl_mechanism.hpp"

namespace afbus {


// dbus-daemon caps its whole auth buffer at 16 KiB; we cap each line (CRLF included) at that.
inline constexpr std::size_t kSaslMaxLineLength = 16 * 1024;
// dbus-daemon disconnects a client after its sixth REJECTED; so do we by default.
inline constexpr unsigned kSaslDefaultMaxRejections = 6;

// Why a conversation ended without authentication. Terminal: the caller should flush the pending
// output (it may hold a last REJECTED) and close the connection.
enum class SaslError : std::uint8_t {
    MissingNulByte,       // server: the first byte of the stream was not NUL
    LineTooLong,          // a line exceeded the configured limit before its CRLF
    InvalidByte,          // NUL or a non-ASCII byte inside a line
    TooManyRejections,    // server: the client was rejected max_rejections times
    BeginBeforeOk,        // server: BEGIN before the client was authenticated
    UnexpectedReply,      // client: a reply the state machine does not allow here
    InvalidGuid,          // client: OK did not carry 32 hex digits
    MechanismsExhausted,  // client: every configured mechanism was rejected
};
std::string_view to_string(SaslError error);

// The server side of DBUS_COOKIE_SHA1. Everything that touches files, the user database or the random
// source is a replaceable function, so the state machine can be driven without any of them.
struct SaslCookieConfig {
    // The only user the mechanism can authenticate: the one the server runs as (its effective uid).
    // Like dbus-daemon, a server never uses another user's keyring: that user controls the directory
    // and could make the server read or write files elsewhere (symlinks).
    uid_t server_uid = 0;
    std::string context{kDefaultCookieContext};
    // The cookie to challenge `uid` with, or why there is none. Unset: Keyring::current() of
    // keyring_directory(home_directory(uid)), which creates and rotates cookies as needed.
    std::function<Expected<KeyringCookie, std::string>(uid_t uid, std::string_view context)> cookie;
    // uid -> home directory for the default `cookie`. Unset: afbus::home_directory ($HOME for ourselves).
    std::function<Expected<std::string, std::string>(uid_t uid)> home_directory;
    // Times, limits and clock of the default `cookie`'s keyring.
    KeyringPolicy keyring;
    // Login name -> uid, for identities that are not decimal uids. Unset: getpwnam_r.
    std::function<std::optional<uid_t>(const std::string& name)> lookup_user;
    // Random bytes for the server challenge (16 of them, as dbus-daemon). Unset: getrandom().
    std::function<Expected<std::string, std::string>(std::size_t count)> random_bytes;
};

struct SaslServerConfig {
    // Offered in this order in REJECTED. ANONYMOUS is only offered when allow_anonymous is set too,
    // DBUS_COOKIE_SHA1 only when cookie_sha1 is set.
    std::vector<SaslMechanism> mechanisms{SaslMechanism::External};
    bool allow_anonymous = false;
    std::optional<SaslCookieConfig> cookie_sha1;
    std::string guid;  // 32 hex digits, sent with OK
    // From SO_PEERCRED, never from the client. Without it (e.g. TCP) EXTERNAL always fails.
    std::optional<uid_t> peer_uid;
    bool unix_fd_possible = false;
    unsigned max_rejections = kSaslDefaultMaxRejections;
    std::size_t max_line_length = kSaslMaxLineLength;
};

class SaslServer {
public:
    enum class State : std::uint8_t {
        WaitingForNul,
        WaitingForAuth,
        WaitingForData,
        WaitingForBegin,
        Authenticated,  // BEGIN received; the byte stream is D-Bus messages from here on
        Failed,
    };

    explicit SaslServer(SaslServerConfig config);

    // Consumes client bytes and returns how many were used. Stops right after the CRLF of BEGIN:
    // input.substr(result) is the start of the client's (pipelined) message stream. Once
    // authenticated or failed it consumes nothing.
    std::size_t feed(std::string_view input);

    // Replies accumulated so far; the caller sends them in order.
    [[nodiscard]] std::string take_output();
    [[nodiscard]] std::string_view pending_output() const { return output_; }

    [[nodiscard]] State state() const { return state_; }
    [[nodiscard]] bool authenticated() const { return state_ == State::Authenticated; }
    [[nodiscard]] bool failed() const { return state_ == State::Failed; }
    [[nodiscard]] std::optional<SaslError> error() const { return error_; }
    // The mechanism that succeeded (meaningful from WaitingForBegin on).
    [[nodiscard]] std::optional<SaslMechanism> mechanism() const { return mechanism_; }
    // The kernel uid the client proved; nullopt for an anonymous client.
    [[nodiscard]] std::optional<uid_t> authenticated_uid() const { return authenticated_uid_; }
    [[nodiscard]] bool anonymous() const { return mechanism_ == SaslMechanism::Anonymous; }
    [[nodiscard]] bool unix_fd_agreed() const { return unix_fd_agreed_; }
    [[nodiscard]] unsigned rejections() const { return rejections_; }
    // Why the last DBUS_COOKIE_SHA1 attempt was rejected (unknown user, keyring problem, wrong hash...);
    // empty if it was not. For logs only: the client is told nothing but REJECTED.
    [[nodiscard]] const std::string& mechanism_problem() const { return mechanism_problem_; }

private:
    // The DBUS_COOKIE_SHA1 conversation between the challenge and the client's answer.
    struct CookieChallenge {
        uid_t uid;
        std::string server_challenge;  // hex, as sent
        std::string secret;            // the cookie, hex
    };

    // A mechanism's answer to a response from the client, as in the spec's server state diagram.
    struct Step {
        enum class Kind : std::uint8_t { Continue, Ok, Reject, Error } kind;
        std::string payload;  // the challenge for Continue, the explanation for Error
    };

    void handle_line(std::string_view line);
    void handle_auth(std::string_view arguments);
    void handle_data(std::string_view arguments);
    Step start_mechanism(SaslMechanism mechanism, std::optional<std::string_view> initial_response);
    Step continue_mechanism(std::optional<std::string_view> response);
    Step external_step(std::string_view identity);
    Step cookie_challenge(std::optional<std::string_view> identity);
    Step cookie_answer(std::string_view response);
    Step cookie_reject(std::string problem);
    void apply(Step step);
    void reject();
    void send_error(std::string_view explanation);
    void fail(SaslError error);
    [[nodiscard]] bool offers(SaslMechanism mechanism) const;

    SaslServerConfig config_;
    std::string rejected_line_;
    std::string output_;
    std::string line_buffer_;
    State state_ = State::WaitingForNul;
    std::optional<SaslError> error_;
    std::optional<SaslMechanism> mechanism_;
    std::optional<uid_t> authenticated_uid_;
    std::optional<CookieChallenge> cookie_;
    std::string mechanism_problem_;
    bool unix_fd_agreed_ = false;
    unsigned rejections_ = 0;
};

struct SaslClientConfig {
    // Tried in this order; on REJECTED the next one the server listed (if it listed any) is tried.
    std::vector<SaslMechanism> mechanisms{SaslMechanism::External};
    // The identity claimed by EXTERNAL and DBUS_COOKIE_SHA1, sent as its decimal string.
    uid_t uid = 0;
    // sd-bus and libdbus send the identity with AUTH; without it the server asks with DATA.
    bool external_initial_response = true;
    // Without initial response: answer the server's DATA with the identity (true) or with an empty
    // DATA meaning "whatever my credentials say" (false).
    bool external_identity_in_data = false;
    // RFC 4505 trace information sent with ANONYMOUS.
    std::string anonymous_trace = "afbus";
    // Normally keyring_directory(home_directory(uid)); a parameter so tests can use a temporary directory.
    std::string keyring_directory;
    // Expiry times for the cookies read from it (expired cookies are ignored, as libdbus does).
    KeyringPolicy keyring;
    bool negotiate_unix_fd = false;
    std::size_t max_line_length = kSaslMaxLineLength;
};

class SaslClient {
public:
    enum class State : std::uint8_t {
        WaitingForData,
        WaitingForOk,
        WaitingForReject,
        WaitingForAgreeUnixFd,
        Authenticated,  // BEGIN is in the output; the caller may append its first message to it
        Failed,
    };

    // Queues the leading NUL and the first AUTH. Asserts that at least one mechanism is configured.
    explicit SaslClient(SaslClientConfig config);

    // Consumes server bytes and returns how many were used; stops after the line that completes
    // authentication, so anything after it belongs to the message stream.
    std::size_t feed(std::string_view input);

    [[nodiscard]] std::string take_output();
    [[nodiscard]] std::string_view pending_output() const { return output_; }

    [[nodiscard]] State state() const { return state_; }
    [[nodiscard]] bool authenticated() const { return state_ == State::Authenticated; }
    [[nodiscard]] bool failed() const { return state_ == State::Failed; }
    [[nodiscard]] std::optional<SaslError> error() const { return error_; }
    [[nodiscard]] std::optional<SaslMechanism> mechanism() const { return current_; }
    [[nodiscard]] const std::string& server_guid() const { return server_guid_; }
    [[nodiscard]] bool unix_fd_agreed() const { return unix_fd_agreed_; }
    // Why the last DBUS_COOKIE_SHA1 attempt could not answer the challenge (empty if it could).
    [[nodiscard]] const std::string& last_mechanism_problem() const { return mechanism_problem_; }

private:
    void handle_line(std::string_view line);
    void start_next_mechanism();
    void handle_challenge(std::string_view hex_challenge);
    void handle_ok(std::string_view arguments);
    void handle_rejected(std::string_view arguments);
    void finish();
    void send_line(std::string_view line);
    void fail(SaslError error);
    Expected<std::string, std::string> cookie_response(std::string_view challenge);

    SaslClientConfig config_;
    std::string output_;
    std::string line_buffer_;
    std::vector<SaslMechanism> tried_;
    std::optional<std::vector<std::string>> server_mechanisms_;
    std::optional<SaslMechanism> current_;
    std::string server_guid_;
    std::string mechanism_problem_;
    State state_ = State::WaitingForOk;
    std::optional<SaslError> error_;
    bool unix_fd_agreed_ = false;
};

}  // namespace afbus
