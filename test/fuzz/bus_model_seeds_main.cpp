// bus-model-seeds OUTPUT_DIR CAPTURE.pcapng...: fuzz_bus_model inputs from captures of bus traffic
// (bus_model_seeds.hpp explains the conversion), written as OUTPUT_DIR/<capture>-<n>. Run by
// test/fuzz/make-bus-model-seeds.sh over the captures of the integration tests.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/bus_model_seeds.hpp"
#include "support/pcapng_reader.hpp"

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s OUTPUT_DIR CAPTURE.pcapng...\n", argv[0]);
        return 2;
    }
    const std::filesystem::path output = argv[1];
    std::size_t captures = 0, inputs = 0, used = 0, skipped = 0, unparsed = 0;
    for (int i = 2; i < argc; ++i) {
        std::ifstream in(argv[i], std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::string why;
        auto file = afbus::test::read_pcapng(bytes, &why);
        if (!file) {
            // A capture cut short (a test that killed everything around it) is not worth failing the run.
            std::fprintf(stderr, "%s: %s: skipped\n", argv[i], why.c_str());
            continue;
        }
        ++captures;
        std::vector<afbus::Message> messages;
        for (const auto& packet : file->packets) {
            auto message = afbus::Message::parse(packet.data);
            if (message) messages.push_back(std::move(*message));
            else ++unparsed;  // cut at the snap length
        }
        auto seeds = afbus::fuzz::bus_model_seeds(messages);
        used += seeds.messages_used;
        skipped += seeds.messages_skipped;
        const std::string stem = std::filesystem::path(argv[i]).stem().string();
        for (std::size_t n = 0; n < seeds.inputs.size(); ++n) {
            std::ofstream out(output / (stem + "-" + std::to_string(n)), std::ios::binary);
            out.write(reinterpret_cast<const char*>(seeds.inputs[n].data()),
                      static_cast<std::streamsize>(seeds.inputs[n].size()));
            if (!out) {
                std::fprintf(stderr, "cannot write into %s\n", output.c_str());
                return 1;
            }
            ++inputs;
        }
    }
    std::printf("%zu captures: %zu inputs from %zu client messages (%zu too long or not renamable, %zu cut short)\n",
                captures, inputs, used, skipped, unparsed);
    return 0;
}
