#include <gtest/gtest.h>

#include <string>

#include "sasl/sha1.hpp"

namespace afbus {
namespace {

// FIPS 180-2 appendix A and the NIST "SHA-1 examples" vectors.
TEST(Sha1, FipsVectors) {
    EXPECT_EQ(Sha1::hex_digest(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    EXPECT_EQ(Sha1::hex_digest("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(Sha1::hex_digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    EXPECT_EQ(Sha1::hex_digest(
                  "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmno"
                  "pqrlmnopqrsmnopqrstnopqrstu"),
              "a49b2446a02c645bf419f995b67091253a04a259");
    EXPECT_EQ(Sha1::hex_digest(std::string(1000000, 'a')), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST(Sha1, PaddingBoundaries) {
    // 55, 56 and 64 bytes straddle the one-block/two-block padding split.
    EXPECT_EQ(Sha1::hex_digest(std::string(55, 'a')), "c1c8bbdc22796e28c0e15163d20899b65621d65a");
    EXPECT_EQ(Sha1::hex_digest(std::string(56, 'a')), "c2db330f6083854c99d4b5bfb6e8f29f201be699");
    EXPECT_EQ(Sha1::hex_digest(std::string(64, 'a')), "0098ba824b5c16427bd7a1122a5a442a25ec644d");
}

TEST(Sha1, IncrementalEqualsOneShot) {
    const std::string text =
        "The quick brown fox jumps over the lazy dog, again and again and again and again.";
    for (std::size_t split = 0; split <= text.size(); ++split) {
        Sha1 sha;
        sha.update(std::string_view(text).substr(0, split));
        sha.update(std::string_view(text).substr(split));
        EXPECT_EQ(sha.finish(), Sha1::digest(text)) << split;
    }
    EXPECT_EQ(Sha1::hex_digest("The quick brown fox jumps over the lazy dog"),
              "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
}

}  // namespace
}  // namespace afbus
