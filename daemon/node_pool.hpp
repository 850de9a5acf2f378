// NodePool: a memory resource that recycles small blocks (the nodes of maps and the arrays of small
// vectors), so that what every routed call adds and its reply takes away again costs no malloc in the
// steady state. It is std::pmr::unsynchronized_pool_resource's job, done here because libstdc++ 12's pool
// is not safe when its upstream allocation fails: after some such failures (the second upstream
// allocation of a pool whose node map keeps growing, for one) its next allocation dereferences a bad
// pointer and the process crashes, and the bus must survive running out of memory (issue 17). Here a
// failed upstream allocation changes nothing and is passed on as std::bad_alloc; test_node_pool runs the
// sequence that crashes libstdc++'s pool.
//
// Single-threaded, like the event loop. Blocks of up to kLargestPooled bytes are kept in free lists by
// size class; larger ones, and over-aligned ones, go to the upstream resource directly. Memory taken from
// upstream is given back when the pool is destroyed.
#pragma once

#include <array>
#include <cstddef>
#include <memory_resource>

namespace afbus::daemon {

class NodePool final : public std::pmr::memory_resource {
public:
    explicit NodePool(std::pmr::memory_resource* upstream = std::pmr::new_delete_resource()) : upstream_(upstream) {}
    ~NodePool() override;
    NodePool(const NodePool&) = delete;
    NodePool& operator=(const NodePool&) = delete;

    static constexpr std::size_t kGranule = alignof(std::max_align_t);
    static constexpr std::size_t kLargestPooled = 256;

    // Bytes taken from upstream for pooled blocks (for tests and statistics).
    [[nodiscard]] std::size_t pooled_bytes() const noexcept { return pooled_bytes_; }

private:
    static constexpr std::size_t kClasses = kLargestPooled / kGranule;
    // Blocks per chunk: the first chunk of a class is small (most classes see few blocks), later ones grow.
    static constexpr std::size_t kFirstChunkBlocks = 8, kLargestChunkBlocks = 256;

    struct FreeBlock {
        FreeBlock* next;
    };
    struct alignas(std::max_align_t) Chunk {
        Chunk* next;
        std::size_t bytes;
    };

    void* do_allocate(std::size_t bytes, std::size_t alignment) override;
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
    [[nodiscard]] bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
    // Takes a chunk of blocks of class `size_class` from upstream: whole, or (throwing) not at all.
    void refill(std::size_t size_class);

    std::pmr::memory_resource* upstream_;
    std::array<FreeBlock*, kClasses> free_{};
    std::array<std::size_t, kClasses> next_chunk_blocks_{};
    Chunk* chunks_ = nullptr;
    std::size_t pooled_bytes_ = 0;
};

}  // namespace afbus::daemon
