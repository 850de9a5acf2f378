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

    // Again, skipping the message that has begun wherever the input says so (as a bus does when it has
    // no room for it): its skipping ends exactly at its last byte, it is reported once, and the
    // framer goes on with whatever follows.
    afbus::MessageFramer skipping;
    std::size_t skip_ends = 0;  // where the message being skipped ends in the input (0: none)
    at = 0;
    while (at < size) {
        const std::size_t chunk = 1 + (data[at] % 64);
        const bool skip = data[at] >= 0xf0;
        auto space = skipping.prepare(std::min(chunk, size - at));
        const std::size_t n = std::min({chunk, size - at, space.size()});
        assert(skip_ends == 0 || at + n <= skip_ends);  // never beyond a skipped message's end
        std::memcpy(space.data(), data + at, n);
        skipping.commit(n);
        at += n;
        if (skip && skip_ends == 0) {
            const std::size_t buffered = skipping.buffered();
            if (skipping.skip_message()) {
                const auto length = afbus::Message::frame_length(
                    std::span<const std::byte, afbus::kFixedHeaderLength>(input.data() + at - buffered,
                                                                          afbus::kFixedHeaderLength));
                assert(length && *length > buffered);
                skip_ends = at - buffered + *length;
                assert(skipping.buffered() == 0 && skipping.pending_fds() == 0);
            }
        }
        for (;;) {
            if (auto skipped = skipping.take_skipped()) {
                assert(skip_ends == at);
                skip_ends = 0;
                (void)skipped;
                assert(!skipping.take_skipped());
            }
            auto next = skipping.next();
            if (!next || !*next) break;
            assert(skip_ends == 0);
        }
    }
    return 0;
}
