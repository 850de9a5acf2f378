// libFuzzer target for the kernel's D-Bus header parser (kernel/dbus/dbus_header.c): any byte string is
// either refused with one of the three documented errnos, or accepted with a header whose every view lies
// inside the buffer (its NUL too), whose lengths add up to the buffer's, and which has the fields its
// message type requires; the body reader then stays inside the body. Crashes, out-of-bounds reads (ASan)
// and UB are what it looks for.
#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "dbus_header.h"
#include "fuzz_check.hpp"

using afbus::fuzz::check;

namespace {

void check_view(const dbus_hdr_view& v, std::size_t lo, std::size_t hi, const std::uint8_t* data,
                const char* what) {
    if (!v.present) {
        check(v.off == 0 && v.len == 0, what);
        return;
    }
    check(v.off >= lo && std::size_t{v.off} + v.len < hi, what);  // the NUL at off + len is inside too
    check(data[v.off + v.len] == 0, what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    dbus_hdr h;
    dbus_hdr_reason reason;
    const int rc = dbus_hdr_parse(data, size, &h, &reason);
    check(rc == dbus_hdr_reason_errno(reason), "the return value is the reason's errno");
    if (rc != 0) {
        check(reason != DBUS_HDR_OK && (rc == -EBADMSG || rc == -EMSGSIZE || rc == -EINVAL),
              "a refusal has a reason and a documented errno");
        (void)dbus_hdr_reason_name(reason);
        return 0;
    }
    check(h.total_len == size && h.body_off + std::size_t{h.body_len} == size, "lengths add up");
    check(h.body_off % 8 == 0 && h.body_off >= 16 + std::size_t{h.fields_len} && h.body_off < 16 + std::size_t{h.fields_len} + 8,
          "the body starts at the fields padded to 8");
    check(h.endian == 'l' || h.endian == 'B', "endianness");
    check(h.type != 0 && h.serial != 0, "type and serial");
    const std::size_t fields_end = 16 + std::size_t{h.fields_len};
    check_view(h.path, 16, fields_end, data, "path inside the field array");
    check_view(h.interface, 16, fields_end, data, "interface inside the field array");
    check_view(h.member, 16, fields_end, data, "member inside the field array");
    check_view(h.error_name, 16, fields_end, data, "error name inside the field array");
    check_view(h.destination, 16, fields_end, data, "destination inside the field array");
    check_view(h.sender, 16, fields_end, data, "sender inside the field array");
    check_view(h.signature, 16, fields_end, data, "signature inside the field array");
    switch (h.type) {
        case DBUS_HDR_TYPE_METHOD_CALL:
            check(h.path.present && h.member.present, "a call has PATH and MEMBER");
            break;
        case DBUS_HDR_TYPE_SIGNAL:
            check(h.path.present && h.interface.present && h.member.present,
                  "a signal has PATH, INTERFACE and MEMBER");
            break;
        case DBUS_HDR_TYPE_METHOD_RETURN:
            check(h.reply_serial != 0, "a return has REPLY_SERIAL");
            break;
        case DBUS_HDR_TYPE_ERROR:
            check(h.error_name.present && h.reply_serial != 0, "an error has ERROR_NAME and REPLY_SERIAL");
            break;
        default:
            break;
    }
    check(((h.fields_seen >> DBUS_HDR_FIELD_PATH) & 1) == h.path.present, "fields_seen matches PATH");
    check(((h.fields_seen >> DBUS_HDR_FIELD_REPLY_SERIAL) & 1) == (h.reply_serial != 0),
          "fields_seen matches REPLY_SERIAL");

    dbus_hdr_view args[4];
    const int n = dbus_hdr_body_strings(data, size, &h, args, 4);
    check(n == -EBADMSG || (n >= 0 && n <= 4), "the body reader returns a count or -EBADMSG");
    for (int i = 0; i < n; ++i) check_view(args[i], h.body_off, size, data, "an argument inside the body");
    return 0;
}
