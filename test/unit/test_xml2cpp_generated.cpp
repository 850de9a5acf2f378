// Bindings that afbus-xml2cpp generated during the build (test/meson.build) from the D-Bus standard
// interfaces, from test/xml2cpp/org.example.Everything.xml (every type, the annotations, awkward names)
// and, when the build machine has them, from PackageKit's XML files in /usr/share/dbus-1/interfaces:
// that this compiles under the project's warnings is most of the test. The checks below pin the shapes
// of the generated functions; test/integration/test_xml2cpp_calculator.cpp runs generated code on a bus.
#include <gtest/gtest.h>

#include <afbus/proxy.hpp>
#include <afbus/typed_object.hpp>
#include <type_traits>

#include "org.example.Everything-adaptor.hpp"
#include "org.example.Everything-proxy.hpp"
#include "org.freedesktop.DBus.Standard-adaptor.hpp"
#include "org.freedesktop.DBus.Standard-proxy.hpp"

#if __has_include("org.freedesktop.PackageKit-proxy.hpp")
#include "org.freedesktop.PackageKit-adaptor.hpp"
#include "org.freedesktop.PackageKit-proxy.hpp"
#include "org.freedesktop.PackageKit.Transaction-adaptor.hpp"
#include "org.freedesktop.PackageKit.Transaction-proxy.hpp"
#define HAVE_PACKAGEKIT_BINDINGS 1
#endif

namespace {

using afbus::CallOptions;
using afbus::Error;
using afbus::Expected;
using afbus::Slot;
using afbus::TypedHandler;
using afbus::TypedResult;

template <class A, class B>
constexpr bool same = std::is_same_v<A, B>;

// The proxies: one function per method (with an _async twin), signal and property accessor.
using Properties = org::freedesktop::DBus::PropertiesProxy;
static_assert(
    same<decltype(&Properties::Get), TypedResult<afbus::Variant> (Properties::*)(
                                         const std::string&, const std::string&, const CallOptions&)>);
static_assert(same<decltype(&Properties::Set),
                   TypedResult<> (Properties::*)(const std::string&, const std::string&,
                                                 const afbus::Variant&, const CallOptions&)>);
static_assert(
    same<decltype(&Properties::on_PropertiesChanged),
         Expected<Slot, Error> (Properties::*)(
             TypedHandler<std::string, std::map<std::string, afbus::Variant>, std::vector<std::string>>)>);
using ObjectManager = org::freedesktop::DBus::ObjectManagerProxy;
static_assert(same<decltype(&ObjectManager::GetManagedObjects),
                   TypedResult<std::map<afbus::ObjectPath,
                                        std::map<std::string, std::map<std::string, afbus::Variant>>>> (
                       ObjectManager::*)(const CallOptions&)>);
static_assert(org::freedesktop::DBus::PeerProxy::interface_name == "org.freedesktop.DBus.Peer");

using Everything = org::example::EverythingProxy;
// Several results as a tuple; a single struct as one tuple.
static_assert(same<decltype(&Everything::Two),
                   TypedResult<std::int32_t, std::string> (Everything::*)(const CallOptions&)>);
static_assert(same<decltype(&Everything::Pair),
                   TypedResult<std::tuple<std::int32_t, std::int32_t>> (Everything::*)(const CallOptions&)>);
static_assert(same<decltype(&Everything::Fd),
                   TypedResult<afbus::UnixFd> (Everything::*)(const afbus::UnixFd&, const CallOptions&)>);
static_assert(
    same<decltype(&Everything::Two_async),
         Expected<Slot, Error> (Everything::*)(TypedHandler<std::int32_t, std::string>, const CallOptions&)>);
// C++ keywords and the generated parameters' own names do not clash with argument names.
static_assert(same<decltype(&Everything::Keywords),
                   TypedResult<> (Everything::*)(const std::string&, const std::int32_t&, const std::string&,
                                                 const std::string&, const std::string&, const std::string&,
                                                 const CallOptions&)>);
// NoReply: no results and no _async twin; the options are taken by value (no_reply is set on a copy).
static_assert(same<decltype(&Everything::Fire),
                   Expected<void, Error> (Everything::*)(const std::string&, CallOptions)>);
// A method named like a property's getter keeps its name; the getter gets a '_'.
static_assert(same<decltype(&Everything::get_Origin), TypedResult<> (Everything::*)(const CallOptions&)>);
static_assert(same<decltype(&Everything::get_Origin_),
                   TypedResult<std::tuple<std::int32_t, std::int32_t>> (Everything::*)(const CallOptions&)>);
static_assert(same<decltype(&Everything::set_Secret),
                   Expected<void, Error> (Everything::*)(const std::string&, const CallOptions&)>);
static_assert(same<decltype(&Everything::get_Anything),
                   TypedResult<afbus::Variant> (Everything::*)(const CallOptions&)>);

// The adaptor: every pure virtual function implemented, with `override` checking each signature.
class EverythingService final : public org::example::EverythingAdaptor {
public:
    using EverythingAdaptor::EverythingAdaptor;

protected:
    Expected<std::tuple<std::uint8_t, afbus::Variant>, Error> Basic(
        std::uint8_t y, bool, std::int16_t, std::uint16_t, std::int32_t, std::uint32_t, std::int64_t,
        std::uint64_t, double, std::string, afbus::ObjectPath, afbus::Signature, afbus::Variant v) override {
        return std::make_tuple(y, std::move(v));
    }
    Expected<afbus::UnixFd, Error> Fd(afbus::UnixFd fd) override { return fd; }
    Expected<std::map<std::string, std::string>, Error> Containers(
        std::vector<std::string>, std::map<std::string, afbus::Variant>,
        std::map<afbus::ObjectPath, std::map<std::string, std::map<std::string, afbus::Variant>>>,
        std::vector<std::tuple<std::uint32_t, std::string, std::string>>,
        std::vector<std::vector<std::uint8_t>>,
        std::tuple<std::map<std::string, std::tuple<std::vector<std::int64_t>>>, std::tuple<bool>>) override {
        return std::map<std::string, std::string>{};
    }
    // A single struct result is a tuple inside the tuple.
    Expected<std::tuple<std::tuple<std::int32_t, std::int32_t>>, Error> Pair() override {
        return std::make_tuple(std::make_tuple(1, 2));
    }
    Expected<std::tuple<std::int32_t, std::string>, Error> Two() override {
        return std::make_tuple(1, "two");
    }
    Expected<void, Error> Keywords(std::string, std::int32_t, std::string, std::string, std::string,
                                   std::string) override {
        return {};
    }
    Expected<void, Error> Fire(std::string) override { return {}; }
    void Slow(afbus::PendingReply<std::string> reply, std::int32_t) override { (void)reply.reply("done"); }
    Expected<void, Error> OldOne() override { return {}; }
    Expected<void, Error> get_Origin() override { return {}; }
    std::map<std::string, afbus::Variant> get_Settings() override { return {}; }
    Expected<void, Error> set_Settings(std::map<std::string, afbus::Variant>) override { return {}; }
    Expected<void, Error> set_Secret(std::string) override { return {}; }
    std::tuple<std::int32_t, std::int32_t> get_Origin_() override { return {0, 0}; }
    std::uint32_t get_Old() override { return 0; }
};
static_assert(!std::is_abstract_v<EverythingService>);
// The emit_ helpers are the adaptor's own.
static_assert(same<decltype(&EverythingService::emit_Many),
                   Expected<void, Error> (org::example::EverythingAdaptor::*)(
                       const std::map<std::string, afbus::Variant>&, const std::string&)>);
static_assert(same<decltype(&EverythingService::emit_Nothing),
                   Expected<void, Error> (org::example::EverythingAdaptor::*)()>);

TEST(Xml2cppGenerated, InterfaceNamesComeFromTheXml) {
    EXPECT_EQ(org::example::EverythingAdaptor::interface_name, "org.example.Everything");
    EXPECT_EQ(org::freedesktop::DBus::ObjectManagerAdaptor::interface_name,
              "org.freedesktop.DBus.ObjectManager");
}

TEST(Xml2cppGenerated, PackageKitBindings) {
#ifdef HAVE_PACKAGEKIT_BINDINGS
    EXPECT_EQ(org::freedesktop::PackageKitProxy::interface_name, "org.freedesktop.PackageKit");
    EXPECT_EQ(org::freedesktop::PackageKit::TransactionProxy::interface_name,
              "org.freedesktop.PackageKit.Transaction");
    static_assert(
        same<decltype(&org::freedesktop::PackageKitProxy::CreateTransaction),
             TypedResult<afbus::ObjectPath> (org::freedesktop::PackageKitProxy::*)(const CallOptions&)>);
#else
    GTEST_SKIP() << "PackageKit's XML is not in /usr/share/dbus-1/interfaces on the build machine";
#endif
}

}  // namespace
