#include "server/views/view_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace npystream::views {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

npy::ArrayMeta Meta(std::vector<int64_t> shape, npy::DType dtype = npy::DType::kFloat32) {
  npy::ArrayMeta meta;
  meta.dtype = dtype;
  meta.shape = std::move(shape);
  return meta;
}

ViewPlan Resolve(const npy::ArrayMeta& meta, const std::string& index,
                 const std::string& dtype = "", uint32_t pool = 0) {
  auto plan = ResolveView(meta, ViewRequest{index, dtype, pool});
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : ViewPlan{};
}

std::string Refusal(const npy::ArrayMeta& meta, const std::string& index,
                    const std::string& dtype = "", uint32_t pool = 0) {
  auto plan = ResolveView(meta, ViewRequest{index, dtype, pool});
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument) << index;
  return std::string(plan.status().message());
}

TEST(ParseIndexTest, ItemsOfEachKind) {
  auto items = ParseIndex(" 0 , 1:5 , ::-2, ..., -3:");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 5u);
  EXPECT_EQ((*items)[0].kind, IndexItem::Kind::kInteger);
  EXPECT_EQ((*items)[0].integer, 0);
  EXPECT_EQ((*items)[1].start, 1);
  EXPECT_EQ((*items)[1].stop, 5);
  EXPECT_FALSE((*items)[1].step.has_value());
  EXPECT_EQ((*items)[2].step, -2);
  EXPECT_FALSE((*items)[2].start.has_value());
  EXPECT_EQ((*items)[3].kind, IndexItem::Kind::kEllipsis);
  EXPECT_EQ((*items)[4].start, -3);
  EXPECT_TRUE(ParseIndex("").value().empty());
  EXPECT_TRUE(ParseIndex("   ").value().empty());
  EXPECT_EQ(ParseIndex("0,").value().size(), 1u);  // a[0,]
}

TEST(ParseIndexTest, RefusesWhatNumpyRefuses) {
  EXPECT_THAT(ParseIndex("::0").status().message(), HasSubstr("slice step cannot be zero"));
  EXPECT_THAT(ParseIndex("...,...").status().message(), HasSubstr("single ellipsis"));
  EXPECT_THAT(ParseIndex("1,,2").status().message(), HasSubstr("empty item"));
  EXPECT_THAT(ParseIndex(",").status().message(), HasSubstr("empty item"));
  EXPECT_THAT(ParseIndex("1:2:3:4").status().message(), HasSubstr("more than two ':'"));
  EXPECT_THAT(ParseIndex("None").status().message(), HasSubstr("is not an integer"));
  EXPECT_THAT(ParseIndex("1 2").status().message(), HasSubstr("is not an integer"));
  EXPECT_THAT(ParseIndex("99999999999999999999").status().message(),
              HasSubstr("is not an integer"));
  for (const char* bad : {"::0", "...,...", "None", "[0]", "0.5", "a"}) {
    EXPECT_EQ(ParseIndex(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(ParseIndex(bad).status().message(), HasSubstr("view index: ")) << bad;
  }
}

TEST(ResolveViewTest, SlicesFollowPythonsSliceIndices) {
  const auto meta = Meta({10});
  EXPECT_THAT(Resolve(meta, "2:8:3").indexed_shape, ElementsAre(2));  // 2, 5
  EXPECT_EQ(Resolve(meta, "2:8:3").offset, 2);
  EXPECT_THAT(Resolve(meta, "::-1").indexed_shape, ElementsAre(10));
  EXPECT_EQ(Resolve(meta, "::-1").offset, 9);
  EXPECT_EQ(Resolve(meta, "::-1").strides[0], -1);
  EXPECT_THAT(Resolve(meta, "-3:").indexed_shape, ElementsAre(3));
  EXPECT_THAT(Resolve(meta, "-100:100").indexed_shape, ElementsAre(10));
  EXPECT_THAT(Resolve(meta, "8:2").indexed_shape, ElementsAre(0));
  EXPECT_THAT(Resolve(meta, "8:2:-2").indexed_shape, ElementsAre(3));  // 8, 6, 4
  EXPECT_THAT(Resolve(meta, "100::-1").indexed_shape, ElementsAre(10));
  EXPECT_THAT(Resolve(meta, "::9223372036854775807").indexed_shape, ElementsAre(1));
  EXPECT_THAT(Resolve(meta, "::-9223372036854775807").indexed_shape, ElementsAre(1));
}

TEST(ResolveViewTest, IntegersDropAxesAndEllipsisFills) {
  const auto meta = Meta({4, 5, 6});
  ViewPlan p = Resolve(meta, "1, ..., -1");
  EXPECT_THAT(p.indexed_shape, ElementsAre(5));
  EXPECT_EQ(p.offset, 1 * 30 + 5);
  EXPECT_THAT(p.strides, ElementsAre(6));
  EXPECT_THAT(Resolve(meta, "...").indexed_shape, ElementsAre(4, 5, 6));
  EXPECT_THAT(Resolve(meta, "0").indexed_shape, ElementsAre(5, 6));
  EXPECT_THAT(Resolve(meta, "0, 0, 0").indexed_shape, ElementsAre());
  EXPECT_THAT(Resolve(meta, "..., 0, 0, 0").indexed_shape, ElementsAre());
  EXPECT_TRUE(Resolve(meta, "1").contiguous());
  EXPECT_TRUE(Resolve(meta, "1:3").contiguous());
  EXPECT_TRUE(Resolve(meta, "1, 2:4").contiguous());
  EXPECT_FALSE(Resolve(meta, ":, 1").contiguous());
  EXPECT_FALSE(Resolve(meta, "::2").contiguous());
  EXPECT_FALSE(Resolve(meta, "1", "<f8").contiguous());
  EXPECT_TRUE(Resolve(Meta({}), "").contiguous());
}

TEST(ResolveViewTest, RefusalsNameTheDefect) {
  const auto meta = Meta({4, 8});
  EXPECT_EQ(Refusal(meta, "0, 12"), "view index: 12 is out of range for axis 1 of size 8");
  EXPECT_EQ(Refusal(meta, "-5"), "view index: -5 is out of range for axis 0 of size 4");
  EXPECT_THAT(Refusal(meta, "0, 0, 0"), HasSubstr("too many indices: 3 for a 2-d tensor"));
  EXPECT_THAT(Refusal(Meta({}), "0"), HasSubstr("too many indices: 1 for a 0-d tensor"));
  EXPECT_THAT(Refusal(meta, "", "<U4"), HasSubstr("view dtype: "));
  EXPECT_EQ(Refusal(meta, "", "<i4"),
            "view dtype: cannot cast float32 to int32 under the same_kind rule");
  EXPECT_THAT(Refusal(Meta({4, 8}, npy::DType::kInt32), "", "", 2),
              HasSubstr("view pool: 2 needs a float dtype; the view is int32"));
  EXPECT_EQ(Refusal(meta, "0", "", 2), "view pool: 2 needs at least 2 axes; the view has 1");
  EXPECT_EQ(Refusal(meta, "", "", 5), "view pool: 5 is larger than axis 0 of size 4");
  EXPECT_EQ(Refusal(meta, "0:3", "", 4), "view pool: 4 is larger than axis 0 of size 3");
}

TEST(ResolveViewTest, CastsAndPoolShapes) {
  const auto meta = Meta({3, 7, 9});
  ViewPlan p = Resolve(meta, "", "<f2", 2);
  EXPECT_EQ(p.out.dtype, npy::DType::kFloat16);
  EXPECT_THAT(p.out.shape, ElementsAre(3, 3, 4));
  EXPECT_THAT(p.indexed_shape, ElementsAre(3, 7, 9));
  EXPECT_EQ(Resolve(meta, "", "float64").out.dtype, npy::DType::kFloat64);  // numpy names too
  EXPECT_EQ(Resolve(Meta({2}, npy::DType::kInt32), "", "<f2", 0).out.dtype,
            npy::DType::kFloat16);  // same_kind allows int -> any float
}

TEST(CanCastSameKindTest, NumpysKindOrder) {
  using npy::DType;
  EXPECT_TRUE(CanCastSameKind(DType::kBool, DType::kUInt8));
  EXPECT_TRUE(CanCastSameKind(DType::kUInt64, DType::kInt8));
  EXPECT_FALSE(CanCastSameKind(DType::kInt8, DType::kUInt64));
  EXPECT_TRUE(CanCastSameKind(DType::kFloat64, DType::kFloat16));
  EXPECT_FALSE(CanCastSameKind(DType::kFloat16, DType::kInt64));
  EXPECT_TRUE(CanCastSameKind(DType::kInt64, DType::kComplex64));
  EXPECT_FALSE(CanCastSameKind(DType::kComplex64, DType::kFloat64));
  EXPECT_FALSE(CanCastSameKind(DType::kUInt8, DType::kBool));
}

}  // namespace
}  // namespace npystream::views
