#include "afbus/signature.hpp"

#include <gtest/gtest.h>

#include <string>

namespace afbus {
namespace {

struct Case {
    std::string signature;
    bool valid;
    WireError error = WireError::SignatureBadTypeCode;
};

class SignatureValidation : public ::testing::TestWithParam<Case> {};

TEST_P(SignatureValidation, MatchesTheSpecification) {
    const Case& c = GetParam();
    auto r = validate_signature(c.signature);
    EXPECT_EQ(static_cast<bool>(r), c.valid) << c.signature;
    if (!c.valid && !r) {
        EXPECT_EQ(r.error(), c.error) << c.signature << ": " << to_string(r.error());
    }
}

std::string repeat(std::string_view s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
}

INSTANTIATE_TEST_SUITE_P(
    Table, SignatureValidation,
    ::testing::Values(
        Case{"", true}, Case{"ybnqiuxtdsogvh", true}, Case{"ai", true}, Case{"a{sv}", true},
        Case{"a{s(ii)}", true}, Case{"(i(ii))", true}, Case{"aaaai", true}, Case{"a(ia{sv})as", true},
        Case{"z", false, WireError::SignatureBadTypeCode}, Case{"r", false, WireError::SignatureBadTypeCode},
        Case{"e", false, WireError::SignatureBadTypeCode}, Case{"a", false, WireError::SignatureArrayWithoutElement},
        Case{"aa", false, WireError::SignatureArrayWithoutElement},
        Case{"(a)", false, WireError::SignatureArrayWithoutElement},
        Case{"()", false, WireError::SignatureEmptyStruct}, Case{"(i", false, WireError::SignatureUnbalancedStruct},
        Case{"i)", false, WireError::SignatureUnbalancedStruct},
        Case{"{sv}", false, WireError::SignatureDictEntryOutsideArray},
        Case{"(i{sv})", false, WireError::SignatureDictEntryOutsideArray},
        Case{"a{s}", false, WireError::SignatureDictEntryNotTwoFields},
        Case{"a{}", false, WireError::SignatureDictEntryNotTwoFields},
        Case{"a{sii}", false, WireError::SignatureDictEntryNotTwoFields},
        Case{"a{vs}", false, WireError::SignatureDictKeyNotBasic},
        Case{"a{(i)s}", false, WireError::SignatureDictKeyNotBasic},
        Case{"a{ais}", false, WireError::SignatureDictKeyNotBasic},
        Case{"a{sv", false, WireError::SignatureUnbalancedDictEntry},
        Case{repeat("a", 32) + "i", true}, Case{repeat("a", 33) + "i", false, WireError::SignatureArraysTooDeep},
        Case{repeat("(", 32) + "i" + repeat(")", 32), true},
        Case{repeat("(", 33) + "i" + repeat(")", 33), false, WireError::SignatureStructsTooDeep},
        // 32 arrays and 32 structs interleaved: the deepest the specification allows.
        Case{repeat("a(", 32) + "i" + repeat(")", 32), true},
        Case{repeat("a(", 32) + "ai" + repeat(")", 32), false, WireError::SignatureArraysTooDeep},
        Case{repeat("i", 255), true}, Case{repeat("i", 256), false, WireError::SignatureTooLong}));

TEST(Signature, SingleCompleteType) {
    EXPECT_TRUE(validate_single_complete_type("a{sv}"));
    EXPECT_TRUE(validate_single_complete_type("(ii)"));
    EXPECT_EQ(validate_single_complete_type("").error(), WireError::SignatureNotSingleCompleteType);
    EXPECT_EQ(validate_single_complete_type("ii").error(), WireError::SignatureNotSingleCompleteType);
    EXPECT_EQ(validate_single_complete_type("i(").error(), WireError::SignatureUnbalancedStruct);
}

TEST(Signature, CompleteTypeLength) {
    EXPECT_EQ(complete_type_length("ii"), 1u);
    EXPECT_EQ(complete_type_length("a{sv}i"), 5u);
    EXPECT_EQ(complete_type_length("(i(ii))s"), 7u);
    EXPECT_EQ(complete_type_length("aa(ii)"), 6u);
}

TEST(Signature, Alignment) {
    EXPECT_EQ(alignment_of('y'), 1u);
    EXPECT_EQ(alignment_of('n'), 2u);
    EXPECT_EQ(alignment_of('b'), 4u);
    EXPECT_EQ(alignment_of('s'), 4u);
    EXPECT_EQ(alignment_of('a'), 4u);
    EXPECT_EQ(alignment_of('t'), 8u);
    EXPECT_EQ(alignment_of('('), 8u);
    EXPECT_EQ(alignment_of('v'), 1u);
    EXPECT_EQ(alignment_of('g'), 1u);
}

}  // namespace
}  // namespace afbus
