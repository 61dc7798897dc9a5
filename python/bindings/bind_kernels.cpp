// Direct access to the kernels, for users composing their own models and for tests that
// compare every kernel against a reference formula.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "array.hpp"
#include "ducklearn/kernels/activation.hpp"
#include "ducklearn/kernels/gemm.hpp"
#include "ducklearn/kernels/loss.hpp"

namespace py = pybind11;
using dl_py::as_farray;
using dl_py::FArray;

namespace {

FArray like(const FArray& a) {
  std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
  return FArray(shape);
}

FArray any_farray(const py::handle& obj, const char* name) {
  auto a = FArray::ensure(obj);
  if (!a) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + " could not be converted to a float32 array");
  }
  return a;
}

void check_same_shape(const FArray& a, const FArray& b, const char* na, const char* nb) {
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == b.shape(i);
  if (!same) {
    throw py::value_error(std::string(na) + " and " + nb + " must have the same shape, got " +
                          dl_py::shape_str(a) + " and " + dl_py::shape_str(b));
  }
}

}  // namespace

void bind_kernels(py::module_& m) {
  m.def(
      "activation_forward",
      [](const std::string& name, const py::handle& z_obj, float alpha) {
        const auto act = ducklearn::activation_from_string(name);
        FArray z = any_farray(z_obj, "z");
        FArray a = like(z);
        {
          py::gil_scoped_release nogil;
          ducklearn::activation_forward(act, z.data(), a.mutable_data(), z.size(), alpha);
        }
        return a;
      },
      py::arg("activation"), py::arg("z"), py::arg("alpha") = 0.01f);

  m.def(
      "activation_backward",
      [](const std::string& name, const py::handle& z_obj, const py::handle& da_obj,
         float alpha) {
        const auto act = ducklearn::activation_from_string(name);
        FArray z = any_farray(z_obj, "z");
        FArray da = any_farray(da_obj, "da");
        check_same_shape(z, da, "z", "da");
        FArray a = like(z);
        FArray dz = like(z);
        {
          py::gil_scoped_release nogil;
          ducklearn::activation_forward(act, z.data(), a.mutable_data(), z.size(), alpha);
          ducklearn::activation_backward(act, z.data(), a.data(), da.data(), dz.mutable_data(),
                                         z.size(), alpha);
        }
        return dz;
      },
      py::arg("activation"), py::arg("z"), py::arg("da"), py::arg("alpha") = 0.01f);

  m.def(
      "softmax",
      [](const py::handle& z_obj) {
        FArray z = as_farray(z_obj, "z", 2);
        if (z.shape(1) < 1) throw py::value_error("z must have at least one column");
        FArray p = like(z);
        py::gil_scoped_release nogil;
        ducklearn::softmax_rows(z.data(), p.mutable_data(), z.shape(0), z.shape(1));
        return p;
      },
      py::arg("z"));

  m.def(
      "loss",
      [](const std::string& name, const py::handle& P_obj, const py::handle& y_obj,
         float delta, float tau, float scale) {
        ducklearn::LossSpec spec;
        spec.kind = ducklearn::loss_from_string(name);
        spec.delta = delta;
        spec.tau = tau;
        ducklearn::validate(spec);
        FArray P = as_farray(P_obj, "predictions", 2);
        FArray y = as_farray(y_obj, "y", 1);
        if (y.shape(0) != P.shape(0)) {
          throw py::value_error("y has " + std::to_string(y.shape(0)) + " rows but predictions " +
                                "has " + std::to_string(P.shape(0)));
        }
        FArray grad = like(P);
        double total;
        {
          py::gil_scoped_release nogil;
          total = ducklearn::loss_and_grad(spec, P.data(), y.data(), P.shape(0), P.shape(1),
                                           grad.mutable_data(), scale);
        }
        return py::make_tuple(total, grad);
      },
      py::arg("loss"), py::arg("predictions"), py::arg("y"), py::arg("delta") = 1.0f,
      py::arg("tau") = 0.5f, py::arg("scale") = 1.0f,
      "Summed loss and scale * dL/dpredictions (predictions are logits for classification).");

  m.def(
      "dense_forward",
      [](const py::handle& X_obj, const py::handle& W_obj, const py::object& b_obj,
         const std::string& name, float alpha) {
        const auto act = ducklearn::activation_from_string(name);
        FArray W = as_farray(W_obj, "W", 2);
        const bool single = py::isinstance<py::array>(X_obj) &&
                            py::cast<py::array>(X_obj).ndim() == 1;
        FArray X = as_farray(X_obj, "X", single ? 1 : 2);
        const py::ssize_t in = W.shape(1), out = W.shape(0);
        const py::ssize_t n = single ? 1 : X.shape(0);
        const py::ssize_t xin = single ? X.shape(0) : X.shape(1);
        if (xin != in) {
          throw py::value_error("X has " + std::to_string(xin) + " features but W expects " +
                                std::to_string(in));
        }
        FArray b;
        const float* bp = nullptr;
        if (!b_obj.is_none()) {
          b = as_farray(b_obj, "b", 1);
          if (b.shape(0) != out) throw py::value_error("b must have W.shape[0] entries");
          bp = b.data();
        }
        FArray Y = single ? FArray({out}) : FArray({n, out});
        {
          py::gil_scoped_release nogil;
          if (single) {
            ducklearn::gemv_bias_act(W.data(), X.data(), bp, nullptr, Y.mutable_data(), out, in,
                                     act, alpha);
          } else {
            ducklearn::gemm_bias_act(X.data(), n, in, W.data(), bp, out, nullptr,
                                     Y.mutable_data(), act, alpha);
          }
        }
        return Y;
      },
      py::arg("X"), py::arg("W"), py::arg("b") = py::none(), py::arg("activation") = "identity",
      py::arg("alpha") = 0.01f,
      "act(X @ W.T + b) with the bias and activation fused; X 1-D uses the batch-1 kernel.");

  m.def(
      "gemm",
      [](const py::handle& A_obj, const py::handle& B_obj, bool trans_a, bool trans_b,
         float alpha) {
        FArray A = as_farray(A_obj, "A", 2);
        FArray B = as_farray(B_obj, "B", 2);
        const py::ssize_t m = trans_a ? A.shape(1) : A.shape(0);
        const py::ssize_t k = trans_a ? A.shape(0) : A.shape(1);
        const py::ssize_t kb = trans_b ? B.shape(1) : B.shape(0);
        const py::ssize_t n = trans_b ? B.shape(0) : B.shape(1);
        if (k != kb) throw py::value_error("inner dimensions of op(A) and op(B) differ");
        FArray C({m, n});
        py::gil_scoped_release nogil;
        ducklearn::gemm(trans_a, trans_b, m, n, k, alpha, A.data(), B.data(), 0.0f,
                        C.mutable_data());
        return C;
      },
      py::arg("A"), py::arg("B"), py::arg("trans_a") = false, py::arg("trans_b") = false,
      py::arg("alpha") = 1.0f);

  m.def(
      "dot",
      [](const py::handle& x_obj, const py::handle& y_obj) {
        FArray x = as_farray(x_obj, "x", 1);
        FArray y = as_farray(y_obj, "y", 1);
        check_same_shape(x, y, "x", "y");
        return ducklearn::dot(x.data(), y.data(), x.size());
      },
      py::arg("x"), py::arg("y"));
}
