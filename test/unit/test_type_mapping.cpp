// The C++ ↔ D-Bus type mapping beyond scalars and the basic containers (afbus/types.hpp): structs described
// with AFBUS_STRUCT, std::variant, enums, std::array, maps of them, and what has no mapping. Every value
// travels both ways in both byte orders: the builder writes native order, and in_byte_order re-marshals a
// message in the other one, the way a peer on a machine of the other endianness would send it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "afbus/types.hpp"
#include "support/round_trip.hpp"

namespace example {

struct Point {
    std::int32_t x = 0;
    std::int32_t y = 0;
    friend bool operator==(const Point&, const Point&) = default;
};
AFBUS_STRUCT(Point, x, y);

enum class Shape : std::uint8_t { Circle = 1, Square = 2 };
enum class Level { Low, High };  // underlying int

struct Figure {
    std::string name;
    Shape shape = Shape::Circle;
    std::vector<Point> outline;
    std::map<std::string, std::variant<std::int32_t, std::string>> tags;
    std::array<double, 3> colour{};
    friend bool operator==(const Figure&, const Figure&) = default;
};
AFBUS_STRUCT(Figure, name, shape, outline, tags, colour);

// Only the listed members travel; `cache` stays local.
struct Partial {
    std::string kept;
    std::int32_t cache = -1;
};
AFBUS_STRUCT(Partial, kept);

struct WithFd {
    afbus::UnixFd fd;
    std::string what;
};
AFBUS_STRUCT(WithFd, fd, what);

struct Undescribed {
    int x;
};

struct HasOptional {
    std::optional<std::int32_t> maybe;
};
AFBUS_STRUCT(HasOptional, maybe);

}  // namespace example

namespace afbus {
namespace {

using test::round_trip;

using example::Figure;
using example::Level;
using example::Point;
using example::Shape;

// Signatures at compile time.
static_assert(signature_of<Point> == "(ii)");
static_assert(signature_of<Figure> == "(sya(ii)a{sv}ad)");
static_assert(signature_of<example::Partial> == "(s)");
static_assert(signature_of<example::WithFd> == "(hs)");
static_assert(signature_of<Shape> == "y");
static_assert(signature_of<Level> == "i");
static_assert(signature_of<std::variant<std::int32_t, std::string>> == "v");
static_assert(signature_of<std::array<std::uint16_t, 4>> == "aq");
static_assert(signature_of<std::unordered_map<Shape, std::vector<Point>>> == "a{ya(ii)}");
static_assert(signature_of<std::tuple<Point, std::variant<Point, Level>>> == "((ii)v)");
static_assert(signature_of_all<Point, Shape, std::array<Point, 2>>.view() == "(ii)ya(ii)");
// AFBUS_STRUCT also records the members' names, in order (Proxy::get_all<T> uses them).
static_assert(afbus_struct_member_names(static_cast<const Figure*>(nullptr)) ==
              std::array<std::string_view, 5>{"name", "shape", "outline", "tags", "colour"});

// What has no mapping is visible to templates (appending one is a compile error naming the type; see
// docs/typed-api.md for the message).
static_assert(!detail::DBusType<std::optional<std::int32_t>>);
static_assert(!detail::DBusType<std::vector<std::optional<std::string>>>);
static_assert(!detail::DBusType<example::Undescribed>);
static_assert(!detail::DBusType<example::HasOptional>);
static_assert(!detail::DBusType<std::variant<std::int32_t, example::Undescribed>>);
static_assert(!detail::DBusType<char>);
static_assert(detail::check_marshallable<std::map<std::string, std::variant<Point, std::array<Shape, 2>>>>());

// The signal `m` (no fds) re-marshalled in `endian`: header fields and body values are written again by
// an Encoder in that byte order, and the result parsed as any received message is.
Message in_byte_order(const Message& m, Endian endian) {
    const bool swap = endian != native_endian();
    auto values = m.reader().read_all();
    EXPECT_TRUE(values) << to_string(values.error());
    Encoder body(swap);
    for (const Value& v : *values) EXPECT_TRUE(encode_value(body, v));
    Encoder h(swap);
    h.put_u8(static_cast<std::uint8_t>(endian));
    h.put_u8(static_cast<std::uint8_t>(m.type()));
    h.put_u8(m.flags());
    h.put_u8(1);
    h.put_u32(static_cast<std::uint32_t>(body.size()));
    h.put_u32(m.serial());
    const std::pair<std::uint8_t, Value> fields[] = {
        {1, Value::object_path(std::string(m.path()))},
        {2, Value::string(std::string(m.interface()))},
        {3, Value::string(std::string(m.member()))},
        {8, Value::signature(std::string(m.signature()))},
    };
    auto mark = h.begin_array(8);
    for (const auto& [code, value] : fields) {
        h.align(8);
        h.put_u8(code);
        h.put_signature(value.type());
        EXPECT_TRUE(encode_value(h, value));
    }
    h.end_array(mark);
    h.align(8);
    std::vector<std::byte> wire = std::move(h).take();
    wire.insert(wire.end(), body.buffer().begin(), body.buffer().end());
    auto parsed = Message::parse(wire);
    EXPECT_TRUE(parsed) << to_string(parsed.error());
    EXPECT_EQ(parsed->endian(), endian);
    return std::move(*parsed);
}

Figure sample_figure() {
    Figure f;
    f.name = "triangle";
    f.shape = Shape::Square;
    f.outline = {{0, 0}, {4, 0}, {0, -3}};
    f.tags = {{"sides", std::int32_t{3}}, {"colour", std::string("red")}};
    f.colour = {0.25, 0.5, 1.0};
    return f;
}

TEST(TypeMapping, StructsVariantsEnumsAndArraysRoundTripInBothByteOrders) {
    const Figure figure = sample_figure();
    const std::unordered_map<Shape, std::vector<Point>> by_shape{{Shape::Circle, {{1, 1}}},
                                                                 {Shape::Square, {}}};
    const std::array<std::uint8_t, 4> bytes{1, 2, 3, 255};
    const std::variant<Point, Level> choice = Level::High;
    auto b = MessageBuilder::signal("/org/example", "org.example.Figures", "Drawn");
    append(b, figure, by_shape, bytes, choice, Level::Low);
    const Message native = round_trip(std::move(b));
    EXPECT_EQ(native.signature(), "(sya(ii)a{sv}ad)a{ya(ii)}ayvi");

    for (const Endian endian : {Endian::Little, Endian::Big}) {
        SCOPED_TRACE(endian == Endian::Little ? "little endian" : "big endian");
        const Message m = in_byte_order(native, endian);
        auto values = read_all<Figure, std::unordered_map<Shape, std::vector<Point>>,
                               std::array<std::uint8_t, 4>, std::variant<Point, Level>, Level>(m);
        ASSERT_TRUE(values) << to_string(values.error());
        EXPECT_EQ(std::get<0>(*values), figure);
        EXPECT_EQ(std::get<1>(*values), by_shape);
        EXPECT_EQ(std::get<2>(*values), bytes);
        EXPECT_EQ(std::get<3>(*values), choice);
        EXPECT_EQ(std::get<4>(*values), Level::Low);
    }
}

TEST(TypeMapping, OnlyTheListedMembersTravel) {
    auto b = MessageBuilder::signal("/p", "org.example.I", "S");
    append(b, example::Partial{"kept", 42});
    const Message m = round_trip(std::move(b));
    EXPECT_EQ(m.signature(), "(s)");
    auto values = read_all<example::Partial>(m);
    ASSERT_TRUE(values);
    EXPECT_EQ(std::get<0>(*values).kept, "kept");
    EXPECT_EQ(std::get<0>(*values).cache, -1);
}

// A struct reads the same bytes as the tuple of its members: the two spellings interoperate.
TEST(TypeMapping, AStructIsTheTupleOfItsMembersOnTheWire) {
    auto b = MessageBuilder::signal("/p", "org.example.I", "S");
    append(b, Point{3, -4}, std::tuple<std::int32_t, std::int32_t>{5, 6});
    const Message m = round_trip(std::move(b));
    auto values = read_all<std::tuple<std::int32_t, std::int32_t>, Point>(m);
    ASSERT_TRUE(values);
    EXPECT_EQ(std::get<0>(*values), std::make_tuple(3, -4));
    EXPECT_EQ(std::get<1>(*values), (Point{5, 6}));
}

TEST(TypeMapping, AVariantDecodesAsTheAlternativeOfItsSignature) {
    auto b = MessageBuilder::signal("/p", "org.example.I", "S");
    append(b, Variant(std::string("text")), Variant(Point{1, 2}), Variant(std::int32_t{7}));
    const Message m = round_trip(std::move(b));
    using Choice = std::variant<std::int32_t, std::string, Point>;
    for (const Endian endian : {Endian::Little, Endian::Big}) {
        auto values = read_all<Choice, Choice, Choice>(in_byte_order(m, endian));
        ASSERT_TRUE(values) << to_string(values.error());
        EXPECT_EQ(std::get<0>(*values), Choice(std::string("text")));
        EXPECT_EQ(std::get<1>(*values), Choice(Point{1, 2}));
        EXPECT_EQ(std::get<2>(*values), Choice(std::int32_t{7}));
    }
}

// A variant holding a type that none of the alternatives has is an error value, never a misread.
TEST(TypeMapping, AVariantOfNoAlternativesTypeIsAnError) {
    auto b = MessageBuilder::signal("/p", "org.example.I", "S");
    append(b, Variant(std::uint32_t{7}));
    const Message m = round_trip(std::move(b));
    auto values = read_all<std::variant<std::int32_t, std::string>>(m);
    ASSERT_FALSE(values);
    EXPECT_EQ(values.error(), WireError::TypeMismatch);
    // The generic Variant still takes it.
    EXPECT_EQ(std::get<0>(read_all<Variant>(m).value()).get<std::uint32_t>().value(), 7u);
}

TEST(TypeMapping, VariantAndStdVariantConvert) {
    const Variant from_std(std::variant<std::int32_t, std::string>(std::string("held")));
    EXPECT_EQ(from_std.type(), "s");  // the alternative, not a variant in a variant
    EXPECT_EQ(from_std.get<std::string>().value(), "held");
    const auto back = from_std.get<std::variant<Point, std::string>>();
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, (std::variant<Point, std::string>(std::string("held"))));
    EXPECT_EQ((from_std.get<std::variant<Point, std::int32_t>>().error()), WireError::TypeMismatch);
    EXPECT_EQ(Variant(Point{1, 2}).type(), "(ii)");
    EXPECT_EQ(Variant(Point{1, 2}).get<Point>().value(), (Point{1, 2}));
    EXPECT_EQ(Variant(Shape::Square).get<Shape>().value(), Shape::Square);
}

TEST(TypeMapping, AFixedArrayChecksTheElementCount) {
    auto b = MessageBuilder::signal("/p", "org.example.I", "S");
    append(b, std::vector<double>{1.0, 2.0}, std::vector<std::uint8_t>{1, 2, 3}, std::vector<Point>{});
    const Message m = round_trip(std::move(b));
    EXPECT_EQ((read_all<std::array<double, 3>, std::vector<std::uint8_t>, std::vector<Point>>(m).error()),
              WireError::TypeMismatch);
    EXPECT_EQ((read_all<std::array<double, 1>, std::vector<std::uint8_t>, std::vector<Point>>(m).error()),
              WireError::TypeMismatch);
    EXPECT_EQ((read_all<std::vector<double>, std::array<std::uint8_t, 2>, std::vector<Point>>(m).error()),
              WireError::TypeMismatch);
    auto exact = read_all<std::array<double, 2>, std::array<std::uint8_t, 3>, std::array<Point, 0>>(m);
    ASSERT_TRUE(exact) << to_string(exact.error());
    EXPECT_EQ(std::get<0>(*exact), (std::array<double, 2>{1.0, 2.0}));
    EXPECT_EQ(std::get<1>(*exact), (std::array<std::uint8_t, 3>{1, 2, 3}));
}

// Any integer reads as the enum, named or not: a peer may know newer values.
TEST(TypeMapping, EnumsTravelAsTheirUnderlyingInteger) {
    auto b = MessageBuilder::signal("/p", "org.example.I", "S");
    append(b, std::uint8_t{2}, std::uint8_t{9}, std::int32_t{1});
    const Message m = round_trip(std::move(b));
    auto values = read_all<Shape, Shape, Level>(m);
    ASSERT_TRUE(values);
    EXPECT_EQ(std::get<0>(*values), Shape::Square);
    EXPECT_EQ(static_cast<int>(std::get<1>(*values)), 9);
    EXPECT_EQ(std::get<2>(*values), Level::High);
    EXPECT_EQ((read_all<Level, Shape, Level>(m).error()), WireError::TypeMismatch);  // 'y' is not 'i'
}

TEST(TypeMapping, UnixFdsInsideStructs) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd read_end(p[0]), write_end(p[1]);
    auto b = MessageBuilder::signal("/p", "org.example.I", "S");
    append(b, example::WithFd{UnixFd(std::move(write_end)), "pipe"});
    auto built = std::move(b).build(3);
    ASSERT_TRUE(built) << to_string(built.error());
    EXPECT_EQ(built->signature(), "(hs)");
    ASSERT_EQ(built->fds().size(), 1u);
    auto values = read_all<example::WithFd>(*built);
    ASSERT_TRUE(values) << to_string(values.error());
    const auto& got = std::get<0>(*values);
    EXPECT_EQ(got.what, "pipe");
    ASSERT_TRUE(got.fd.fd().valid());
    ASSERT_EQ(::write(got.fd.fd().get(), "x", 1), 1);
    char c = 0;
    ASSERT_EQ(::read(read_end.get(), &c, 1), 1);
    EXPECT_EQ(c, 'x');
}

}  // namespace
}  // namespace afbus
