#include "policy_image.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace afbus::policy {
namespace {

template <typename T>
T get(const std::vector<std::byte>& bytes, std::size_t offset) {
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

std::string describe_rule(std::size_t index, const char* what) {
    return "rule " + std::to_string(index) + ": " + what;
}

}  // namespace

std::uint32_t ImageBuilder::add_string(std::string_view s) {
    if (auto it = string_offsets_.find(s); it != string_offsets_.end()) return it->second;
    const auto offset = static_cast<std::uint32_t>(strings_.size());
    strings_.append(s);
    strings_.push_back('\0');
    string_offsets_.emplace(std::string(s), offset);
    return offset;
}

void ImageBuilder::begin_context(ContextKind kind, std::uint32_t id) {
    ContextRecord context{};
    context.kind = static_cast<std::uint8_t>(kind);
    context.id = id;
    context.first_rule = static_cast<std::uint32_t>(rules_.size());
    context.rule_count = 0;
    contexts_.push_back(context);
}

void ImageBuilder::add_rule(const RuleRecord& rule) {
    // A rule always belongs to a context; the compiler opens one per <policy> element.
    if (contexts_.empty()) begin_context(ContextKind::Default, 0);
    rules_.push_back(rule);
    ++contexts_.back().rule_count;
}

std::vector<std::byte> ImageBuilder::finish() && {
    ImageHeader header{};
    header.magic = kImageMagic;
    header.version = kImageVersion;
    header.header_size = sizeof(ImageHeader);
    header.rule_count = static_cast<std::uint32_t>(rules_.size());
    header.rules_offset = sizeof(ImageHeader);
    header.context_count = static_cast<std::uint32_t>(contexts_.size());
    header.contexts_offset = header.rules_offset + header.rule_count * static_cast<std::uint32_t>(sizeof(RuleRecord));
    header.strings_offset = header.contexts_offset + header.context_count * static_cast<std::uint32_t>(sizeof(ContextRecord));
    header.strings_size = static_cast<std::uint32_t>(strings_.size());
    header.total_size = header.strings_offset + header.strings_size;

    // Sized once and filled in place: growing the vector piece by piece made GCC 12 at -O3 warn of a
    // memmove into a region of size 0 (-Wstringop-overflow, a false positive that breaks -Werror builds).
    std::vector<std::byte> out(header.total_size);
    std::size_t at = 0;
    const auto write = [&out, &at](const void* data, std::size_t size) {
        if (size != 0) std::memcpy(out.data() + at, data, size);
        at += size;
    };
    write(&header, sizeof header);
    write(rules_.data(), rules_.size() * sizeof(RuleRecord));
    write(contexts_.data(), contexts_.size() * sizeof(ContextRecord));
    write(strings_.data(), strings_.size());
    assert(at == out.size());
    return out;
}

Expected<PolicyImage, std::string> PolicyImage::load(std::vector<std::byte> bytes) {
    using Error = Unexpected<std::string>;
    if (bytes.size() < sizeof(ImageHeader)) return Error("image shorter than its header");
    if (bytes.size() > kMaxImageSize) return Error("image larger than " + std::to_string(kMaxImageSize) + " bytes");
    const auto header = get<ImageHeader>(bytes, 0);
    if (header.magic != kImageMagic) return Error("not a policy image (bad magic)");
    if (header.version != kImageVersion) return Error("unsupported policy image version " + std::to_string(header.version));
    if (header.header_size != sizeof(ImageHeader)) return Error("bad header size");
    if (header.total_size != bytes.size()) return Error("total size does not match the image's length");
    if (header.rule_count > kMaxRules) return Error("too many rules");
    if (header.context_count > kMaxContexts) return Error("too many contexts");
    // Sections in order, without gaps or overlaps; 64-bit arithmetic so nothing wraps.
    const std::uint64_t rules_end = std::uint64_t{header.rules_offset} + std::uint64_t{header.rule_count} * sizeof(RuleRecord);
    const std::uint64_t contexts_end =
        std::uint64_t{header.contexts_offset} + std::uint64_t{header.context_count} * sizeof(ContextRecord);
    const std::uint64_t strings_end = std::uint64_t{header.strings_offset} + header.strings_size;
    if (header.rules_offset != sizeof(ImageHeader) || header.contexts_offset != rules_end ||
        header.strings_offset != contexts_end || strings_end != header.total_size)
        return Error("sections out of place");

    PolicyImage image;
    image.strings_.assign(reinterpret_cast<const char*>(bytes.data()) + header.strings_offset, header.strings_size);
    if (!image.strings_.empty() && image.strings_.back() != '\0') return Error("string section not terminated");

    // Each string once: evaluators compare strings by offset (the kernel's does; docs/policy.md), so two
    // copies of one string would make a rule miss what it names. The compiler never writes a copy.
    {
        std::vector<std::string_view> all;
        for (std::size_t at = 0; at < image.strings_.size(); at = image.strings_.find('\0', at) + 1)
            all.emplace_back(image.strings_.c_str() + at);
        std::sort(all.begin(), all.end());
        if (std::adjacent_find(all.begin(), all.end()) != all.end()) return Error("a string stored twice");
    }

    // No string is longer than kMaxStringLength, checked once for the section: a check per reference
    // would cost rules x string length (the kernel's evaluator checks the same way).
    for (std::size_t at = 0; at < image.strings_.size();) {
        const std::size_t end = image.strings_.find('\0', at);
        if (end - at > kMaxStringLength) return Error("a string longer than " + std::to_string(kMaxStringLength) + " bytes");
        at = end + 1;
    }
    auto valid_string = [&](std::uint32_t offset, bool optional) {
        if (offset == kNoString) return optional;
        if (offset >= image.strings_.size()) return false;
        // Strings start at a string boundary.
        return offset == 0 || image.strings_[offset - 1] == '\0';
    };

    image.rules_.reserve(header.rule_count);
    for (std::uint32_t i = 0; i < header.rule_count; ++i) {
        const auto rule = get<RuleRecord>(bytes, header.rules_offset + i * sizeof(RuleRecord));
        if (rule.kind > static_cast<std::uint8_t>(RuleKind::Receive)) return Error(describe_rule(i, "bad kind"));
        if (rule.verdict > static_cast<std::uint8_t>(Verdict::Reject)) return Error(describe_rule(i, "bad verdict"));
        if (rule.flags >= (1u << 6)) return Error(describe_rule(i, "unknown flags"));
        if (rule.message_type > 4) return Error(describe_rule(i, "bad message type"));
        if (rule.reply > static_cast<std::uint8_t>(ReplyCondition::UnrequestedOnly)) return Error(describe_rule(i, "bad reply condition"));
        if (rule.broadcast > static_cast<std::uint8_t>(Broadcast::No)) return Error(describe_rule(i, "bad broadcast"));
        if (rule.name_match > static_cast<std::uint8_t>(NameMatch::Prefix)) return Error(describe_rule(i, "bad name match"));
        if (rule.reserved != 0) return Error(describe_rule(i, "reserved byte set"));
        if ((rule.name_match == static_cast<std::uint8_t>(NameMatch::Any)) != (rule.name == kNoString))
            return Error(describe_rule(i, "name and name match disagree"));
        if (!valid_string(rule.name, true) || !valid_string(rule.path, true) || !valid_string(rule.interface, true) ||
            !valid_string(rule.member, true) || !valid_string(rule.error, true) || !valid_string(rule.file, true))
            return Error(describe_rule(i, "string offset out of range"));
        const bool reject = rule.verdict == static_cast<std::uint8_t>(Verdict::Reject);
        if (reject ? !valid_string(rule.reject_error, false) : rule.reject_error != kNoString)
            return Error(describe_rule(i, "reject error name missing or misplaced"));
        // min_fds above max_fds is allowed: busconfig accepts it, and the rule then matches no message.
        if (rule.min_fds > kMaxMessageFds || rule.max_fds > kMaxMessageFds) return Error(describe_rule(i, "bad fd range"));
        image.rules_.push_back(rule);
    }

    image.contexts_.reserve(header.context_count);
    std::uint32_t next_rule = 0;
    for (std::uint32_t i = 0; i < header.context_count; ++i) {
        const auto context = get<ContextRecord>(bytes, header.contexts_offset + i * sizeof(ContextRecord));
        if (context.kind > static_cast<std::uint8_t>(ContextKind::NotAtConsole))
            return Error("context " + std::to_string(i) + ": bad kind");
        // Contexts tile the rule table in order: every rule belongs to exactly one.
        if (context.first_rule != next_rule || context.rule_count > header.rule_count - next_rule)
            return Error("context " + std::to_string(i) + ": rules out of range");
        next_rule += context.rule_count;
        image.contexts_.push_back(context);
    }
    if (next_rule != header.rule_count) return Error("rules outside every context");
    image.bytes_ = std::move(bytes);
    return image;
}

std::string_view PolicyImage::string(std::uint32_t offset) const {
    if (offset == kNoString) return {};
    return std::string_view(strings_.c_str() + offset);
}

std::optional<std::string_view> PolicyImage::optional_string(std::uint32_t offset) const {
    if (offset == kNoString) return std::nullopt;
    return string(offset);
}

}  // namespace afbus::policy
