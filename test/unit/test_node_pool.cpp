#include "node_pool.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory_resource>
#include <unordered_map>
#include <vector>

namespace afbus::daemon {
namespace {

// An upstream resource whose allocation number `fail_at` throws, counting what is outstanding.
class FailingUpstream final : public std::pmr::memory_resource {
public:
    int allocations = 0;
    int fail_at = 0;
    std::size_t outstanding = 0;

private:
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        if (++allocations == fail_at) throw std::bad_alloc();
        outstanding += bytes;
        return std::pmr::new_delete_resource()->allocate(bytes, alignment);
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        outstanding -= bytes;
        std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
    }
    [[nodiscard]] bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
};

TEST(NodePool, FreedBlocksAreReusedWithoutGoingUpstream) {
    FailingUpstream upstream;
    NodePool pool(&upstream);
    void* a = pool.allocate(40, 8);
    void* b = pool.allocate(40, 8);
    EXPECT_NE(a, b);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % alignof(std::max_align_t), 0u);
    const int taken = upstream.allocations;
    pool.deallocate(a, 40, 8);
    EXPECT_EQ(pool.allocate(33, 8), a);  // the same size class
    EXPECT_EQ(upstream.allocations, taken);
    pool.deallocate(a, 33, 8);
    pool.deallocate(b, 40, 8);
}

TEST(NodePool, LargeAndOverAlignedBlocksGoUpstream) {
    FailingUpstream upstream;
    NodePool pool(&upstream);
    void* large = pool.allocate(NodePool::kLargestPooled + 1, 8);
    EXPECT_EQ(upstream.outstanding, NodePool::kLargestPooled + 1);
    pool.deallocate(large, NodePool::kLargestPooled + 1, 8);
    EXPECT_EQ(upstream.outstanding, 0u);
    void* aligned = pool.allocate(64, 64);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(aligned) % 64, 0u);
    pool.deallocate(aligned, 64, 64);
    EXPECT_EQ(upstream.outstanding, 0u);
}

TEST(NodePool, GivesEverythingBackWhenDestroyed) {
    FailingUpstream upstream;
    {
        NodePool pool(&upstream);
        std::pmr::unordered_map<int, int> map(&pool);
        for (int i = 0; i < 1000; ++i) map[i] = i;
        EXPECT_GT(pool.pooled_bytes(), 0u);
    }
    EXPECT_EQ(upstream.outstanding, 0u);
}

// A map growing while its upstream fails once, at each point in turn: the failed insertion throws, and
// the pool goes on serving (libstdc++ 12's unsynchronized_pool_resource crashes here for several of them).
TEST(NodePool, AFailedUpstreamAllocationChangesNothing) {
    for (int fail_at = 1; fail_at <= 20; ++fail_at) {
        SCOPED_TRACE(fail_at);
        FailingUpstream upstream;
        upstream.fail_at = fail_at;
        {
            NodePool pool(&upstream);
            std::pmr::unordered_map<long, long> map(&pool);
            int failures = 0;
            for (long i = 0; i < 1000; ++i) {
                try {
                    map[i] = i;
                } catch (const std::bad_alloc&) {
                    ++failures;
                }
            }
            EXPECT_EQ(failures, upstream.allocations >= fail_at ? 1 : 0);
            EXPECT_EQ(map.size(), 1000u - static_cast<std::size_t>(failures));
            for (const auto& [key, value] : map) EXPECT_EQ(key, value);
        }
        EXPECT_EQ(upstream.outstanding, 0u);
    }
}

}  // namespace
}  // namespace afbus::daemon
