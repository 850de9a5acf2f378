// libFuzzer target for the message parser: any byte string either fails to parse with an error value or
// yields a message that survives a round trip (wire bytes re-parse to the same header and values), sender
// stitching, typed reads of its unix-fd indexes, and framing from arbitrary chunk boundaries. Crashes, leaks and UB are what it looks for.
#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "afbus/framer.hpp"
#include "afbus/message.hpp"
#include "afbus/types.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);

    auto message = afbus::Message::parse(input);
    if (message) {
        auto values = message->reader().read_all();
        assert(values);  // a validated body always decodes
        // A unix-fd index is any uint32 on the wire (docs/wire-format.md): parsed without fds, reading one
        // as an fd fails with FdIndexOutOfRange, as a value.
        afbus::MessageReader fd_reader(*message);
        if (fd_reader.peek_type() == "h") {
            afbus::UnixFd fd;
            auto got = afbus::read(fd_reader, fd);
            assert(!got && got.error() == afbus::WireError::FdIndexOutOfRange);
            (void)got;
        }
        auto again = afbus::Message::parse(message->wire());
        assert(again);
        assert(again->serial() == message->serial());
        assert(again->signature() == message->signature());
        assert(again->reader().read_all().value() == *values);
        auto stitched = message->with_sender(":1.42");
        if (stitched) {
            assert(stitched->sender() == ":1.42");
            assert(afbus::Message::parse(stitched->wire()));
        }
        (void)message->describe();
    }

    // The same bytes through the stream framer, in chunks whose sizes come from the input itself.
    afbus::MessageFramer framer;
    std::size_t at = 0;
    while (at < size) {
        const std::size_t chunk = 1 + (data[at] % 64);
        auto space = framer.prepare(std::min(chunk, size - at));
        // Less than asked for while the rest of a large message is read into its own storage.
        const std::size_t n = std::min({chunk, size - at, space.size()});
        std::memcpy(space.data(), data + at, n);
        framer.commit(n);
        at += n;
        for (;;) {
            auto next = framer.next();
            if (!next || !*next) break;
        }
    }
    return 0;
}
