// Backend report, SIMD switch, CUDA stubs and the name parsers of the public API.
#include <stdexcept>
#include <string>

#include "ducklearn/ducklearn.hpp"
#include "test_util.hpp"

namespace {

using namespace ducklearn;

TEST(Backend, InfoDescribesThisBuild) {
  const BackendInfo info = backend_info();
  EXPECT_EQ(info.version, DUCKLEARN_VERSION);
  EXPECT_EQ(info.blas, DUCKLEARN_BLAS_NAME);
  EXPECT_EQ(info.cuda_compiled, DUCKLEARN_HAS_CUDA != 0);
  EXPECT_GE(info.hardware_threads, 1);
  EXPECT_GE(info.blas_threads, 1);
  EXPECT_EQ(info.simd_best, simd::target_name(simd::best_supported_target()));
  EXPECT_EQ(info.simd_target, simd::target_name(simd::active_target()));
}

TEST(Backend, SetSimdTargetByName) {
  const simd::Target before = simd::active_target();
  EXPECT_TRUE(set_simd_target("generic"));
  EXPECT_EQ(backend_info().simd_target, "generic");
  EXPECT_FALSE(set_simd_target("sse9"));
  EXPECT_EQ(backend_info().simd_target, "generic") << "a refused name leaves the target alone";
  EXPECT_TRUE(set_simd_target("auto"));
  EXPECT_EQ(backend_info().simd_target, backend_info().simd_best);
  ASSERT_TRUE(simd::set_target(before));
}

TEST(Backend, CudaStubsExplainThemselves) {
  EXPECT_EQ(cuda::compiled(), DUCKLEARN_HAS_CUDA != 0);
  if (cuda::compiled()) GTEST_SKIP() << "CUDA build: the device entry points are real";
  EXPECT_THROW(cuda::device_count(), CudaUnavailable);
  float x = 0.0f;
  EXPECT_THROW(cuda::dense_forward(&x, 1, 1, &x, nullptr, 1, &x, Activation::ReLU, 0.01f, 0),
               CudaUnavailable);
  try {
    OptimizerConfig cfg;
    cuda::optimizer_step(cfg, 0, &x, &x, &x, 1, 0);
    FAIL() << "expected CudaUnavailable";
  } catch (const CudaUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find("DUCKLEARN_ENABLE_CUDA=ON"), std::string::npos)
        << "the message names the fix: " << e.what();
  }
}

TEST(Errors, InternalErrorsCarryFileAndLine) {
  try {
    DUCKLEARN_CHECK_MSG(1 + 1 == 3, "arithmetic broke");
    FAIL() << "expected ducklearn::Error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("arithmetic broke"), std::string::npos);
    EXPECT_NE(what.find("test_backend.cpp:"), std::string::npos) << what;
  }
  EXPECT_THROW(DUCKLEARN_CHECK_ARG(false, "bad"), std::invalid_argument);
  EXPECT_NO_THROW(DUCKLEARN_CHECK_ARG(true, "fine"));
}

TEST(Names, ActivationsRoundTrip) {
  for (Activation a : {Activation::Identity, Activation::ReLU, Activation::LeakyReLU,
                       Activation::Tanh, Activation::Sigmoid, Activation::GELU}) {
    EXPECT_EQ(activation_from_string(to_string(a)), a);
  }
  EXPECT_EQ(activation_from_string("linear"), Activation::Identity);
  EXPECT_EQ(activation_from_string("logistic"), Activation::Sigmoid);
  EXPECT_THROW(activation_from_string("swish"), std::invalid_argument);
}

TEST(Names, LossesRoundTrip) {
  for (LossKind k : {LossKind::Logistic, LossKind::SoftmaxCE, LossKind::Squared, LossKind::Huber,
                     LossKind::Pinball}) {
    EXPECT_EQ(loss_from_string(to_string(k)), k);
  }
  EXPECT_EQ(loss_from_string("quantile"), LossKind::Pinball);
  EXPECT_EQ(loss_from_string("log_loss"), LossKind::Logistic);
  EXPECT_THROW(loss_from_string("hinge"), std::invalid_argument);
}

TEST(Names, OptimizersAndSchedulesRoundTrip) {
  for (OptimizerKind k : {OptimizerKind::SGD, OptimizerKind::AdaGrad, OptimizerKind::RMSProp,
                          OptimizerKind::Adam, OptimizerKind::AdamW}) {
    EXPECT_EQ(optimizer_from_string(to_string(k)), k);
  }
  EXPECT_EQ(optimizer_from_string("AdamW"), OptimizerKind::AdamW) << "case-insensitive";
  EXPECT_THROW(optimizer_from_string("lbfgs"), std::invalid_argument);
  for (ScheduleKind k : {ScheduleKind::Constant, ScheduleKind::Step, ScheduleKind::Exponential,
                         ScheduleKind::InverseScaling, ScheduleKind::Cosine}) {
    EXPECT_EQ(schedule_from_string(to_string(k)), k);
  }
  EXPECT_EQ(schedule_from_string("invscaling"), ScheduleKind::InverseScaling);
  EXPECT_THROW(schedule_from_string("cyclic"), std::invalid_argument);
}

}  // namespace
