#include "server/views/view_kernels.h"

#include <complex>
#include <cstring>
#include <type_traits>

namespace npystream::views {
namespace {

// Element types by storage. Half and Bool are tags over their bits.
struct Half {
  uint16_t bits;
};
struct Bool {
  uint8_t value;
};

template <class T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <class T>
void Store(char* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

template <class T>
constexpr int Kind() {
  if constexpr (std::is_same_v<T, Bool>) return 0;
  if constexpr (std::is_unsigned_v<T>) return 1;
  if constexpr (std::is_integral_v<T>) return 2;
  if constexpr (std::is_same_v<T, Half> || std::is_floating_point_v<T>) return 3;
  return 4;  // complex
}

template <class T>
struct IsComplex : std::false_type {};
template <class T>
struct IsComplex<std::complex<T>> : std::true_type {};

// A real source value as the arithmetic type it converts through.
template <class S>
auto Real(S s) {
  if constexpr (std::is_same_v<S, Bool>) {
    return static_cast<uint8_t>(s.value != 0);
  } else if constexpr (std::is_same_v<S, Half>) {
    return HalfToFloat(s.bits);
  } else {
    return s;
  }
}

// numpy's cast of one element from S to D (a same_kind cast).
template <class S, class D>
D Convert(S s) {
  if constexpr (std::is_same_v<S, D>) {
    return s;
  } else if constexpr (IsComplex<D>::value) {
    using Part = typename D::value_type;
    if constexpr (IsComplex<S>::value) {
      return D(static_cast<Part>(s.real()), static_cast<Part>(s.imag()));
    } else {
      return D(static_cast<Part>(Real(s)), Part(0));
    }
  } else if constexpr (std::is_same_v<D, Half>) {
    const auto r = Real(s);
    // Integers go through float (exact for every integer a half can hold,
    // as numpy does); doubles are rounded once.
    if constexpr (std::is_same_v<decltype(r), double>) {
      return Half{DoubleToHalf(r)};
    } else {
      return Half{FloatToHalf(static_cast<float>(r))};
    }
  } else if constexpr (std::is_same_v<D, Bool>) {
    return Bool{static_cast<uint8_t>(Real(s) != 0)};  // only bool -> bool is same_kind
  } else if constexpr (std::is_same_v<S, Half> && std::is_same_v<D, double>) {
    return HalfToDouble(s.bits);  // numpy keeps a NaN's bits; float -> double would quiet it
  } else {
    return static_cast<D>(Real(s));
  }
}

template <class D>
double AsDouble(D d) {
  if constexpr (std::is_same_v<D, Half>) {
    return HalfToFloat(d.bits);
  } else {
    return static_cast<double>(d);
  }
}

template <class D>
D FromDouble(double v) {
  if constexpr (std::is_same_v<D, Half>) {
    return Half{DoubleToHalf(v)};
  } else {
    return static_cast<D>(v);
  }
}

template <class S, class D>
void CopyLoop(const char* src, int64_t stride, int64_t count, char* dst) {
  const int64_t step = stride * static_cast<int64_t>(sizeof(S));
  if constexpr (std::is_same_v<S, D>) {
    if (stride == 1) {
      std::memcpy(dst, src, count * sizeof(S));
      return;
    }
  }
  for (int64_t i = 0; i < count; ++i, src += step, dst += sizeof(D)) {
    Store<D>(dst, Convert<S, D>(Load<S>(src)));
  }
}

template <class S, class D>
void PoolLoop(const char* src, int64_t row_stride, int64_t col_stride, uint32_t n, int64_t count,
              char* dst) {
  const int64_t row_step = row_stride * static_cast<int64_t>(sizeof(S));
  const int64_t col_step = col_stride * static_cast<int64_t>(sizeof(S));
  const double scale = 1.0 / (static_cast<double>(n) * n);
  for (int64_t j = 0; j < count; ++j, dst += sizeof(D)) {
    const char* block = src + j * static_cast<int64_t>(n) * col_step;
    double sum = 0;
    for (uint32_t a = 0; a < n; ++a) {
      const char* p = block + a * row_step;
      for (uint32_t b = 0; b < n; ++b, p += col_step) {
        sum += AsDouble(Convert<S, D>(Load<S>(p)));
      }
    }
    // The sum of n*n values of D, divided: numpy's mean, rounded once.
    Store<D>(dst, FromDouble<D>(n * n == 1 ? sum : sum * scale));
  }
}

template <npy::DType T>
struct TypeOf;
#define NPYSTREAM_VIEW_TYPE(dt, type) \
  template <>                         \
  struct TypeOf<npy::DType::dt> {     \
    using Type = type;                \
  }
NPYSTREAM_VIEW_TYPE(kBool, Bool);
NPYSTREAM_VIEW_TYPE(kInt8, int8_t);
NPYSTREAM_VIEW_TYPE(kUInt8, uint8_t);
NPYSTREAM_VIEW_TYPE(kInt16, int16_t);
NPYSTREAM_VIEW_TYPE(kUInt16, uint16_t);
NPYSTREAM_VIEW_TYPE(kInt32, int32_t);
NPYSTREAM_VIEW_TYPE(kUInt32, uint32_t);
NPYSTREAM_VIEW_TYPE(kInt64, int64_t);
NPYSTREAM_VIEW_TYPE(kUInt64, uint64_t);
NPYSTREAM_VIEW_TYPE(kFloat16, Half);
NPYSTREAM_VIEW_TYPE(kFloat32, float);
NPYSTREAM_VIEW_TYPE(kFloat64, double);
NPYSTREAM_VIEW_TYPE(kComplex64, std::complex<float>);
NPYSTREAM_VIEW_TYPE(kComplex128, std::complex<double>);
#undef NPYSTREAM_VIEW_TYPE

struct Loops {
  CopyRun copy[npy::kNumDTypes][npy::kNumDTypes] = {};
  PoolRun pool[npy::kNumDTypes][npy::kNumDTypes] = {};
};

template <int From, int To>
void Fill(Loops* loops) {
  using S = typename TypeOf<static_cast<npy::DType>(From)>::Type;
  using D = typename TypeOf<static_cast<npy::DType>(To)>::Type;
  if constexpr (Kind<S>() <= Kind<D>()) {
    loops->copy[From][To] = &CopyLoop<S, D>;
    if constexpr (Kind<D>() == 3) loops->pool[From][To] = &PoolLoop<S, D>;
  }
}

template <int From, int... To>
void FillRow(Loops* loops, std::integer_sequence<int, To...>) {
  (Fill<From, To>(loops), ...);
}

template <int... From>
void FillAll(Loops* loops, std::integer_sequence<int, From...> all) {
  (FillRow<From>(loops, all), ...);
}

const Loops& AllLoops() {
  static const Loops* loops = [] {
    auto* l = new Loops;
    FillAll(l, std::make_integer_sequence<int, npy::kNumDTypes>());
    return l;
  }();
  return *loops;
}

// Round to nearest even of `mantissa` shifted right by `shift` (1..63).
uint64_t RoundShift(uint64_t mantissa, int shift) {
  const uint64_t q = mantissa >> shift;
  const uint64_t rem = mantissa & ((uint64_t{1} << shift) - 1);
  const uint64_t half = uint64_t{1} << (shift - 1);
  return q + ((rem > half || (rem == half && (q & 1))) ? 1 : 0);
}

// A finite or infinite or NaN value given by its IEEE fields, to half.
// exp_unbiased: the exponent of the leading bit; mantissa has `bits` bits
// after the leading one (the leading one included for normals).
uint16_t ToHalf(uint16_t sign, bool nan, bool inf, uint64_t nan_top10, int exponent,
                uint64_t mantissa, int fraction_bits) {
  if (nan) {
    uint16_t r = static_cast<uint16_t>(0x7c00u + nan_top10);
    if (r == 0x7c00u) ++r;
    return sign | r;
  }
  if (inf) return sign | 0x7c00u;
  if (mantissa == 0) return sign;
  // value = mantissa * 2^(exponent - fraction_bits), mantissa < 2^(fraction_bits+1)
  if (exponent >= 16) return sign | 0x7c00u;
  if (exponent >= -14) {  // a normal half (or rounds up to infinity)
    const int shift = fraction_bits - 10;
    const uint64_t m = RoundShift(mantissa, shift);  // 11 bits, may carry to 12
    const uint32_t h = (static_cast<uint32_t>(exponent + 15) << 10) + (m - 0x400);
    return sign | static_cast<uint16_t>(h >= 0x7c00u ? 0x7c00u : h);
  }
  // A subnormal half: units of 2^-24.
  const int shift = fraction_bits - exponent - 24;
  if (shift >= 64) return sign;
  return sign | static_cast<uint16_t>(RoundShift(mantissa, shift));
}

}  // namespace

uint16_t FloatToHalf(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t e = (x >> 23) & 0xffu;
  const uint32_t f = x & 0x7fffffu;
  if (e == 0xffu) return ToHalf(sign, f != 0, f == 0, f >> 13, 0, 0, 23);
  if (e == 0) {  // a float subnormal is far below half's smallest
    return sign;
  }
  return ToHalf(sign, false, false, 0, static_cast<int>(e) - 127, f | 0x800000u, 23);
}

uint16_t DoubleToHalf(double value) {
  uint64_t x;
  std::memcpy(&x, &value, sizeof(x));
  const auto sign = static_cast<uint16_t>((x >> 48) & 0x8000u);
  const uint64_t e = (x >> 52) & 0x7ffu;
  const uint64_t f = x & ((uint64_t{1} << 52) - 1);
  if (e == 0x7ffu) return ToHalf(sign, f != 0, f == 0, f >> 42, 0, 0, 52);
  if (e == 0) return sign;
  return ToHalf(sign, false, false, 0, static_cast<int>(e) - 1023, f | (uint64_t{1} << 52), 52);
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  uint32_t f = h & 0x3ffu;
  uint32_t bits;
  if (e == 0x1fu) {
    bits = sign | 0x7f800000u | (f << 13);
  } else if (e != 0) {
    bits = sign | ((e + 112) << 23) | (f << 13);
  } else if (f == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    int shift = 0;
    while ((f & 0x400u) == 0) {
      f <<= 1;
      ++shift;
    }
    bits = sign | (static_cast<uint32_t>(113 - shift) << 23) | ((f & 0x3ffu) << 13);
  }
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

double HalfToDouble(uint16_t h) {
  if ((h & 0x7c00u) != 0x7c00u) return HalfToFloat(h);  // exact
  uint64_t bits = (static_cast<uint64_t>(h & 0x8000u) << 48) | 0x7ff0000000000000ull |
                  (static_cast<uint64_t>(h & 0x3ffu) << 42);
  double out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

CopyRun CopyRunFor(npy::DType from, npy::DType to) {
  return AllLoops().copy[static_cast<int>(from)][static_cast<int>(to)];
}

PoolRun PoolRunFor(npy::DType from, npy::DType to) {
  return AllLoops().pool[static_cast<int>(from)][static_cast<int>(to)];
}

}  // namespace npystream::views
