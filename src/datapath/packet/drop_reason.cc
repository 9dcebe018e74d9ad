#include "datapath/packet/drop_reason.h"

#include <array>

namespace canopy::datapath {
namespace {

// "Ipv4Truncated" -> "ipv4_truncated", at compile time.
template <size_t N>
struct SnakeName {
  std::array<char, N * 2> text{};
  size_t size = 0;
  constexpr explicit SnakeName(const char (&camel)[N]) {
    for (size_t i = 0; i + 1 < N; ++i) {
      char c = camel[i];
      if (c >= 'A' && c <= 'Z') {
        if (i > 0) text[size++] = '_';
        c = static_cast<char>(c - 'A' + 'a');
      }
      text[size++] = c;
    }
  }
  constexpr std::string_view view() const { return {text.data(), size}; }
};

#define CANOPY_DROP_SNAKE(name, text) constexpr SnakeName kSnake##name(#name);
CANOPY_DROP_REASONS(CANOPY_DROP_SNAKE)
#undef CANOPY_DROP_SNAKE

constexpr std::string_view kNames[] = {"none",
#define CANOPY_DROP_NAME(name, text) kSnake##name.view(),
                                       CANOPY_DROP_REASONS(CANOPY_DROP_NAME)
#undef CANOPY_DROP_NAME
};

constexpr std::string_view kTexts[] = {"not dropped",
#define CANOPY_DROP_TEXT(name, text) text,
                                       CANOPY_DROP_REASONS(CANOPY_DROP_TEXT)
#undef CANOPY_DROP_TEXT
};

static_assert(std::size(kNames) == kDropReasonCount);
static_assert(kSnakeIpv4Truncated.view() == "ipv4_truncated");

}  // namespace

std::string_view dropReasonName(DropReason reason) noexcept {
  auto i = static_cast<size_t>(reason);
  return i < kDropReasonCount ? kNames[i] : "unknown";
}

std::string_view dropReasonText(DropReason reason) noexcept {
  auto i = static_cast<size_t>(reason);
  return i < kDropReasonCount ? kTexts[i] : "unknown";
}

}  // namespace canopy::datapath
