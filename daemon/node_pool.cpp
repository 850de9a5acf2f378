#include "node_pool.hpp"

#include <new>

namespace afbus::daemon {
namespace {

bool pooled(std::size_t bytes, std::size_t alignment) {
    return bytes != 0 && bytes <= NodePool::kLargestPooled && alignment <= alignof(std::max_align_t);
}

std::size_t class_of(std::size_t bytes) { return (bytes + NodePool::kGranule - 1) / NodePool::kGranule - 1; }

}  // namespace

NodePool::~NodePool() {
    while (chunks_) {
        Chunk* next = chunks_->next;
        upstream_->deallocate(chunks_, chunks_->bytes, alignof(Chunk));
        chunks_ = next;
    }
}

void NodePool::refill(std::size_t size_class) {
    std::size_t& blocks = next_chunk_blocks_[size_class];
    if (blocks == 0) blocks = kFirstChunkBlocks;
    const std::size_t block_size = (size_class + 1) * kGranule;
    const std::size_t bytes = sizeof(Chunk) + blocks * block_size;
    void* memory = upstream_->allocate(bytes, alignof(Chunk));  // the only step that can fail
    Chunk* chunk = ::new (memory) Chunk{chunks_, bytes};
    chunks_ = chunk;
    pooled_bytes_ += bytes;
    auto* first = reinterpret_cast<std::byte*>(chunk + 1);
    for (std::size_t i = blocks; i-- > 0;) {
        auto* block = ::new (first + i * block_size) FreeBlock{free_[size_class]};
        free_[size_class] = block;
    }
    if (blocks < kLargestChunkBlocks) blocks *= 2;
}

void* NodePool::do_allocate(std::size_t bytes, std::size_t alignment) {
    if (!pooled(bytes, alignment)) return upstream_->allocate(bytes, alignment);
    const std::size_t size_class = class_of(bytes);
    if (!free_[size_class]) refill(size_class);
    FreeBlock* block = free_[size_class];
    free_[size_class] = block->next;
    return block;
}

void NodePool::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
    if (!pooled(bytes, alignment)) return upstream_->deallocate(p, bytes, alignment);
    const std::size_t size_class = class_of(bytes);
    free_[size_class] = ::new (p) FreeBlock{free_[size_class]};
}

}  // namespace afbus::daemon
