// Wire-format cost, afbus side by side with libdbus doing the same work in the same run:
//   parse     bytes -> validated message -> every body value extracted
//               afbus: Message::parse + typed reads; libdbus: dbus_message_demarshal + iterating the body
//   marshal   values -> a message's wire bytes
//               afbus: MessageBuilder + append + build (header and body ready for sendmsg), and the same
//               plus one copy into a contiguous buffer ("_contiguous"), which is what dbus_message_marshal
//               returns; libdbus: dbus_message_new + append + dbus_message_marshal (its only public way to
//               get a message's bytes)
// for a typical ~200-byte method call, a message with a 1 MiB byte array, and a large a{sv}.
#include <benchmark/benchmark.h>
#include <dbus/dbus.h>

#include <map>
#include <string>
#include <vector>

#include "afbus/types.hpp"

namespace {

using afbus::MessageBuilder;
using afbus::Variant;

// --- the three messages, built once by afbus ---

constexpr const char* kDest = "org.freedesktop.NetworkManager";
constexpr const char* kPath = "/org/freedesktop/NetworkManager/Devices/3";
constexpr const char* kIface = "org.freedesktop.NetworkManager.Device";

MessageBuilder typical_call() {
    auto b = MessageBuilder::method_call(kDest, kPath, kIface, "SetProperty");
    b.sender(":1.42");
    afbus::append(b, std::string("Autoconnect"), std::uint32_t{1}, std::string("wlan0"));
    return b;
}

std::vector<std::uint8_t> megabyte() { return std::vector<std::uint8_t>(1u << 20, 0xa5); }

MessageBuilder byte_array_call() {
    auto b = MessageBuilder::method_call(kDest, kPath, kIface, "Upload");
    afbus::append(b, megabyte());
    return b;
}

std::map<std::string, Variant> big_dict() {
    std::map<std::string, Variant> d;
    for (int i = 0; i < 500; ++i) {
        const std::string k = "Property" + std::to_string(i);
        switch (i % 4) {
            case 0: d.emplace(k, Variant(std::int32_t{i})); break;
            case 1: d.emplace(k, Variant(std::string("value number ") + std::to_string(i))); break;
            case 2: d.emplace(k, Variant(i % 3 == 0)); break;
            default: d.emplace(k, Variant(std::uint64_t{1} << (i % 60))); break;
        }
    }
    return d;
}

MessageBuilder dict_signal(const std::map<std::string, Variant>& d) {
    auto b = MessageBuilder::signal(kPath, "org.freedesktop.DBus.Properties", "PropertiesChanged");
    b.sender(":1.42");
    afbus::append(b, std::string(kIface), d, std::vector<std::string>{});
    return b;
}

std::vector<std::byte> wire_of(MessageBuilder b) { return b.build(7).value().wire(); }
// What a sender needs: a built message, header and body ready for one sendmsg.
afbus::Message built(MessageBuilder b) { return b.build(7).value(); }

// --- libdbus helpers ---

DBusMessage* demarshal(const std::vector<std::byte>& w) {
    DBusError e;
    dbus_error_init(&e);
    DBusMessage* m = dbus_message_demarshal(reinterpret_cast<const char*>(w.data()), static_cast<int>(w.size()), &e);
    if (!m) std::abort();
    return m;
}

void libdbus_walk(DBusMessageIter* it, benchmark::State& state) {
    for (;;) {
        const int t = dbus_message_iter_get_arg_type(it);
        if (t == DBUS_TYPE_INVALID) return;
        if (dbus_type_is_container(t)) {
            DBusMessageIter sub;
            dbus_message_iter_recurse(it, &sub);
            if (t == DBUS_TYPE_ARRAY && dbus_type_is_fixed(dbus_message_iter_get_element_type(it))) {
                const void* data;
                int n;
                dbus_message_iter_get_fixed_array(&sub, &data, &n);
                benchmark::DoNotOptimize(data);
            } else {
                libdbus_walk(&sub, state);
            }
        } else {
            DBusBasicValue v;
            dbus_message_iter_get_basic(it, &v);
            benchmark::DoNotOptimize(v);
        }
        dbus_message_iter_next(it);
    }
}

void libdbus_iterate(DBusMessage* m, benchmark::State& state) {
    DBusMessageIter it;
    if (dbus_message_iter_init(m, &it)) libdbus_walk(&it, state);
}

DBusMessage* libdbus_new_call(const char* member) {
    DBusMessage* m = dbus_message_new_method_call(kDest, kPath, kIface, member);
    return m;
}

void libdbus_marshal(DBusMessage* m) {
    dbus_message_set_serial(m, 7);
    char* bytes;
    int n;
    if (!dbus_message_marshal(m, &bytes, &n)) std::abort();
    benchmark::DoNotOptimize(bytes);
    dbus_free(bytes);
    dbus_message_unref(m);
}

// --- the bus stamping SENDER ---

// What a broker does to every message it routes, and libafbus to every message it sends on AF_BUS: a
// copy of a client's call (no SENDER) with the sender's unique name stitched into its header.
void BM_WithSender_TypicalCall_afbus(benchmark::State& state) {
    auto b = MessageBuilder::method_call(kDest, kPath, kIface, "SetProperty");
    afbus::append(b, std::string("Autoconnect"), std::uint32_t{1}, std::string("wlan0"));
    const auto m = b.build(7).value();
    for (auto _ : state) {
        auto stamped = m.with_sender(":1.42");
        benchmark::DoNotOptimize(stamped);
    }
}
// The copy alone, for what the stitching adds to it.
void BM_Clone_TypicalCall_afbus(benchmark::State& state) {
    auto b = MessageBuilder::method_call(kDest, kPath, kIface, "SetProperty");
    afbus::append(b, std::string("Autoconnect"), std::uint32_t{1}, std::string("wlan0"));
    const auto m = b.build(7).value();
    for (auto _ : state) {
        auto copy = m.clone();
        benchmark::DoNotOptimize(copy);
    }
}

// --- parse ---

void BM_Parse_TypicalCall_afbus(benchmark::State& state) {
    const auto w = wire_of(typical_call());
    for (auto _ : state) {
        auto m = afbus::Message::parse(w);
        auto v = afbus::read_all<std::string, std::uint32_t, std::string>(*m);
        benchmark::DoNotOptimize(v);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * w.size()));
}
void BM_Parse_TypicalCall_libdbus(benchmark::State& state) {
    const auto w = wire_of(typical_call());
    for (auto _ : state) {
        DBusMessage* m = demarshal(w);
        libdbus_iterate(m, state);
        dbus_message_unref(m);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * w.size()));
}

void BM_Parse_ByteArray1MiB_afbus(benchmark::State& state) {
    const auto w = wire_of(byte_array_call());
    for (auto _ : state) {
        auto m = afbus::Message::parse(w);
        // Borrowing the bytes is what a reader of a large array does; libdbus's fixed-array read borrows too.
        auto v = afbus::read_all<std::span<const std::uint8_t>>(*m);
        benchmark::DoNotOptimize(v);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * w.size()));
}
void BM_Parse_ByteArray1MiB_libdbus(benchmark::State& state) {
    const auto w = wire_of(byte_array_call());
    for (auto _ : state) {
        DBusMessage* m = demarshal(w);
        libdbus_iterate(m, state);
        dbus_message_unref(m);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * w.size()));
}

void BM_Parse_LargeDict_afbus(benchmark::State& state) {
    const auto w = wire_of(dict_signal(big_dict()));
    for (auto _ : state) {
        auto m = afbus::Message::parse(w);
        auto v = afbus::read_all<std::string, std::map<std::string, Variant>, std::vector<std::string>>(*m);
        benchmark::DoNotOptimize(v);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * w.size()));
}
void BM_Parse_LargeDict_libdbus(benchmark::State& state) {
    const auto w = wire_of(dict_signal(big_dict()));
    for (auto _ : state) {
        DBusMessage* m = demarshal(w);
        libdbus_iterate(m, state);
        dbus_message_unref(m);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * w.size()));
}

// --- marshal ---

void BM_Marshal_TypicalCall_afbus(benchmark::State& state) {
    for (auto _ : state) {
        auto m = built(typical_call());
        benchmark::DoNotOptimize(m);
    }
}
void BM_Marshal_TypicalCall_afbus_contiguous(benchmark::State& state) {
    for (auto _ : state) {
        auto w = wire_of(typical_call());
        benchmark::DoNotOptimize(w);
    }
}
void BM_Marshal_TypicalCall_libdbus(benchmark::State& state) {
    for (auto _ : state) {
        DBusMessage* m = libdbus_new_call("SetProperty");
        dbus_message_set_sender(m, ":1.42");
        const char* a = "Autoconnect";
        const char* c = "wlan0";
        dbus_uint32_t b = 1;
        dbus_message_append_args(m, DBUS_TYPE_STRING, &a, DBUS_TYPE_UINT32, &b, DBUS_TYPE_STRING, &c, DBUS_TYPE_INVALID);
        libdbus_marshal(m);
    }
}

void BM_Marshal_ByteArray1MiB_afbus(benchmark::State& state) {
    const auto data = megabyte();
    for (auto _ : state) {
        auto b = MessageBuilder::method_call(kDest, kPath, kIface, "Upload");
        afbus::append(b, std::span<const std::uint8_t>(data));
        auto m = b.build(7).value();
        benchmark::DoNotOptimize(m);
    }
}
void BM_Marshal_ByteArray1MiB_afbus_contiguous(benchmark::State& state) {
    const auto data = megabyte();
    for (auto _ : state) {
        auto b = MessageBuilder::method_call(kDest, kPath, kIface, "Upload");
        afbus::append(b, std::span<const std::uint8_t>(data));
        auto w = b.build(7).value().wire();
        benchmark::DoNotOptimize(w);
    }
}
void BM_Marshal_ByteArray1MiB_libdbus(benchmark::State& state) {
    const auto data = megabyte();
    for (auto _ : state) {
        DBusMessage* m = libdbus_new_call("Upload");
        const std::uint8_t* p = data.data();
        dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &p, static_cast<int>(data.size()), DBUS_TYPE_INVALID);
        libdbus_marshal(m);
    }
}

void BM_Marshal_LargeDict_afbus(benchmark::State& state) {
    const auto d = big_dict();
    for (auto _ : state) {
        auto m = built(dict_signal(d));
        benchmark::DoNotOptimize(m);
    }
}
void BM_Marshal_LargeDict_afbus_contiguous(benchmark::State& state) {
    const auto d = big_dict();
    for (auto _ : state) {
        auto w = wire_of(dict_signal(d));
        benchmark::DoNotOptimize(w);
    }
}
void BM_Marshal_LargeDict_libdbus(benchmark::State& state) {
    const auto d = big_dict();
    for (auto _ : state) {
        DBusMessage* m = dbus_message_new_signal(kPath, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        dbus_message_set_sender(m, ":1.42");
        DBusMessageIter it, dict, entry, var, arr;
        dbus_message_iter_init_append(m, &it);
        const char* iface = kIface;
        dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &iface);
        dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict);
        for (const auto& [key, value] : d) {
            dbus_message_iter_open_container(&dict, DBUS_TYPE_DICT_ENTRY, nullptr, &entry);
            const char* k = key.c_str();
            dbus_message_iter_append_basic(&entry, DBUS_TYPE_STRING, &k);
            const afbus::Value& v = value.value();
            const std::string sig = v.type();
            dbus_message_iter_open_container(&entry, DBUS_TYPE_VARIANT, sig.c_str(), &var);
            switch (sig[0]) {
                case 'i': dbus_message_iter_append_basic(&var, DBUS_TYPE_INT32, v.get_if<std::int32_t>()); break;
                case 't': dbus_message_iter_append_basic(&var, DBUS_TYPE_UINT64, v.get_if<std::uint64_t>()); break;
                case 'b': {
                    dbus_bool_t x = *v.get_if<bool>();
                    dbus_message_iter_append_basic(&var, DBUS_TYPE_BOOLEAN, &x);
                    break;
                }
                default: {
                    const char* s = v.text().c_str();
                    dbus_message_iter_append_basic(&var, DBUS_TYPE_STRING, &s);
                }
            }
            dbus_message_iter_close_container(&entry, &var);
            dbus_message_iter_close_container(&dict, &entry);
        }
        dbus_message_iter_close_container(&it, &dict);
        dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &arr);
        dbus_message_iter_close_container(&it, &arr);
        libdbus_marshal(m);
    }
}

BENCHMARK(BM_WithSender_TypicalCall_afbus);
BENCHMARK(BM_Clone_TypicalCall_afbus);
BENCHMARK(BM_Parse_TypicalCall_afbus);
BENCHMARK(BM_Parse_TypicalCall_libdbus);
BENCHMARK(BM_Parse_ByteArray1MiB_afbus);
BENCHMARK(BM_Parse_ByteArray1MiB_libdbus);
BENCHMARK(BM_Parse_LargeDict_afbus);
BENCHMARK(BM_Parse_LargeDict_libdbus);
BENCHMARK(BM_Marshal_TypicalCall_afbus);
BENCHMARK(BM_Marshal_TypicalCall_afbus_contiguous);
BENCHMARK(BM_Marshal_TypicalCall_libdbus);
BENCHMARK(BM_Marshal_ByteArray1MiB_afbus);
BENCHMARK(BM_Marshal_ByteArray1MiB_afbus_contiguous);
BENCHMARK(BM_Marshal_ByteArray1MiB_libdbus);
BENCHMARK(BM_Marshal_LargeDict_afbus);
BENCHMARK(BM_Marshal_LargeDict_afbus_contiguous);
BENCHMARK(BM_Marshal_LargeDict_libdbus);

}  // namespace

BENCHMARK_MAIN();
