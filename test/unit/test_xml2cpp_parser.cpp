// afbus-xml2cpp's introspection parser (tools/xml2cpp/introspection.hpp): the model it reads from good
// XML, and for bad XML an error naming the file, the line and the reason.
#include <gtest/gtest.h>

#include <string>

#include "introspection.hpp"

namespace xml2cpp {
namespace {

IntrospectionData parse_ok(std::string_view xml) {
    auto data = parse_introspection(xml, "good.xml");
    EXPECT_TRUE(data) << (data ? "" : data.error().message());
    return data ? *data : IntrospectionData{};
}

ParseError parse_error(std::string_view xml) {
    auto data = parse_introspection(xml, "bad.xml");
    EXPECT_FALSE(data);
    return data ? ParseError{} : data.error();
}

constexpr std::string_view kCalculator =
    R"(<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node name="/org/example/Calculator">
  <interface name="org.example.Calculator">
    <doc:doc><doc:summary>Ignored documentation</doc:summary></doc:doc>
    <method name="Add">
      <arg name="a" type="d" direction="in"/>
      <arg name="b" type="d"/>
      <arg name="sum" type="d" direction="out"/>
    </method>
    <method name="Quit">
      <annotation name="org.freedesktop.DBus.Method.NoReply" value="true"/>
    </method>
    <method name="Old">
      <annotation name="org.freedesktop.DBus.Deprecated" value="true"/>
      <annotation name="org.freedesktop.DBus.Method.Async" value="server"/>
      <arg type="a{sv}" direction="out"/>
    </method>
    <signal name="Computed">
      <arg name="expression" type="s"/>
      <arg name="result" type="d" direction="out"/>
    </signal>
    <property name="Computations" type="u" access="read">
      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="false"/>
    </property>
    <property name="Memory" type="d" access="readwrite"/>
    <property name="Secret" type="s" access="write"/>
  </interface>
  <interface name="org.example.Other">
    <annotation name="org.freedesktop.DBus.Deprecated" value="true"/>
  </interface>
  <node name="child">
    <interface name="org.example.Calculator"><method name="Again"/></interface>
    <interface name="org.example.Child"/>
  </node>
</node>
)";

TEST(Xml2cppParser, ReadsInterfacesMembersArgumentsAndAnnotations) {
    const auto data = parse_ok(kCalculator);
    ASSERT_EQ(data.interfaces.size(), 3u);
    const Interface& calc = data.interfaces[0];
    EXPECT_EQ(calc.name, "org.example.Calculator");
    ASSERT_EQ(calc.methods.size(), 3u);
    const Method& add = calc.methods[0];
    EXPECT_EQ(add.name, "Add");
    ASSERT_EQ(add.in.size(), 2u);
    EXPECT_EQ(add.in[0].name, "a");
    EXPECT_EQ(add.in[1].name, "b");  // no direction: in
    ASSERT_EQ(add.out.size(), 1u);
    EXPECT_EQ(add.out[0].name, "sum");
    EXPECT_EQ(add.out[0].type, "d");
    EXPECT_FALSE(add.no_reply);
    EXPECT_TRUE(calc.methods[1].no_reply);
    EXPECT_TRUE(calc.methods[2].deprecated);
    EXPECT_TRUE(calc.methods[2].server_async);
    EXPECT_EQ(calc.methods[2].out.at(0).name, "");
    EXPECT_EQ(calc.methods[2].out.at(0).type, "a{sv}");
    ASSERT_EQ(calc.signals.size(), 1u);
    ASSERT_EQ(calc.signals[0].arguments.size(), 2u);
    EXPECT_EQ(calc.signals[0].arguments[1].type, "d");
    ASSERT_EQ(calc.properties.size(), 3u);
    EXPECT_EQ(calc.properties[0].access, Property::Access::Read);
    ASSERT_EQ(calc.properties[0].annotations.size(), 1u);
    EXPECT_EQ(calc.properties[0].annotations[0].value, "false");
    EXPECT_EQ(calc.properties[1].access, Property::Access::ReadWrite);
    EXPECT_TRUE(calc.properties[1].readable() && calc.properties[1].writable());
    EXPECT_EQ(calc.properties[2].access, Property::Access::Write);
    EXPECT_FALSE(calc.properties[2].readable());
    EXPECT_TRUE(data.interfaces[1].deprecated);
    // A child node's description of an interface already read does not add to it.
    EXPECT_EQ(data.interfaces[2].name, "org.example.Child");
}

TEST(Xml2cppParser, AnEmptyNodeHasNoInterfaces) {
    EXPECT_TRUE(parse_ok("<node/>").interfaces.empty());
}

TEST(Xml2cppParser, MalformedXmlNamesFileAndLine) {
    const auto error = parse_error("<node>\n  <interface name=\"a.b\">\n  </node>\n");
    EXPECT_EQ(error.file, "bad.xml");
    EXPECT_EQ(error.line, 3u);
    EXPECT_NE(error.reason.find("malformed XML"), std::string::npos) << error.reason;
    EXPECT_EQ(error.message().rfind("bad.xml:3: malformed XML", 0), 0u) << error.message();
}

TEST(Xml2cppParser, TheRootMustBeANode) {
    const auto error = parse_error("<interface name=\"a.b\"/>");
    EXPECT_EQ(error.line, 1u);
    EXPECT_NE(error.reason.find("root element is <interface>"), std::string::npos) << error.reason;
}

TEST(Xml2cppParser, UnknownTypeNamesItsLine) {
    const auto error = parse_error(R"(<node>
  <interface name="org.example.A">
    <method name="M">
      <arg name="x" type="z"/>
    </method>
  </interface>
</node>)");
    EXPECT_EQ(error.line, 4u);
    EXPECT_EQ(error.message(),
              "bad.xml:4: argument 'x' of org.example.A.M has type 'z', which is not a single complete D-Bus "
              "type: character 1: 'z' is not a D-Bus type code");
}

TEST(Xml2cppParser, MissingNamesAreErrors) {
    EXPECT_EQ(parse_error("<node>\n<interface/>\n</node>").message(),
              "bad.xml:2: <interface> without a name attribute");
    EXPECT_EQ(parse_error("<node><interface name=\"a.b\">\n\n<method/></interface></node>").message(),
              "bad.xml:3: <method> without a name attribute");
    EXPECT_EQ(parse_error("<node><interface name=\"a.b\">\n<signal name=\"\"/></interface></node>").message(),
              "bad.xml:2: <signal> without a name attribute");
    EXPECT_EQ(parse_error(
                  "<node><interface name=\"a.b\">\n<property type=\"s\" access=\"read\"/></interface></node>")
                  .message(),
              "bad.xml:2: <property> without a name attribute");
    EXPECT_EQ(
        parse_error("<node><interface name=\"a.b\">\n<annotation value=\"x\"/></interface></node>").message(),
        "bad.xml:2: <annotation> without a name attribute");
}

TEST(Xml2cppParser, BadAccessAndMissingTypeOrAccess) {
    EXPECT_EQ(parse_error("<node><interface name=\"a.b\">\n<property name=\"P\" type=\"s\" access=\"rw\"/>"
                          "</interface></node>")
                  .message(),
              "bad.xml:2: property a.b.P has access 'rw', not read, write or readwrite");
    EXPECT_EQ(
        parse_error("<node><interface name=\"a.b\">\n<property name=\"P\" type=\"s\"/></interface></node>")
            .message(),
        "bad.xml:2: property a.b.P has no access attribute (read, write or readwrite)");
    EXPECT_EQ(parse_error(
                  "<node><interface name=\"a.b\">\n<property name=\"P\" access=\"read\"/></interface></node>")
                  .message(),
              "bad.xml:2: property a.b.P has no type attribute");
    EXPECT_EQ(parse_error("<node><interface name=\"a.b\"><method name=\"M\">\n<arg name=\"x\"/></method>"
                          "</interface></node>")
                  .message(),
              "bad.xml:2: argument 'x' of a.b.M has no type attribute");
}

TEST(Xml2cppParser, APropertyHoldsOneType) {
    const auto error = parse_error(
        "<node><interface name=\"a.b\">\n<property name=\"P\" type=\"ss\" "
        "access=\"read\"/></interface></node>");
    EXPECT_NE(error.reason.find("'ss' is more than one type"), std::string::npos) << error.reason;
}

TEST(Xml2cppParser, BadDirectionsAndNames) {
    EXPECT_EQ(parse_error("<node><interface name=\"a.b\"><method name=\"M\">\n<arg name=\"x\" type=\"s\" "
                          "direction=\"inout\"/></method></interface></node>")
                  .message(),
              "bad.xml:2: argument 'x' of a.b.M has direction 'inout', not in or out");
    EXPECT_EQ(
        parse_error("<node><interface name=\"a.b\"><signal name=\"S\">\n<arg type=\"s\" direction=\"in\"/>"
                    "</signal></interface></node>")
            .message(),
        "bad.xml:2: argument (unnamed) of a.b.S has direction 'in': a signal's arguments are all 'out'");
    EXPECT_EQ(parse_error("<node>\n<interface name=\"nodots\"/></node>").message(),
              "bad.xml:2: 'nodots' is not a valid interface name");
    EXPECT_EQ(parse_error("<node><interface name=\"a.b\">\n<method name=\"Bad-Name\"/></interface></node>")
                  .message(),
              "bad.xml:2: 'Bad-Name' is not a valid method name");
}

}  // namespace
}  // namespace xml2cpp
