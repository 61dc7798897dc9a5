#pragma once
/**
 * Complete, exact state of learners as StateDicts (see ducklearn/state.hpp): architecture,
 * loss, optimizer configuration and state (step, moments, rate scale), input statistics,
 * EWC anchors, counters. save then load gives an object that continues bit for bit.
 */
#include <string>

#include "ducklearn/export.hpp"
#include "ducklearn/state.hpp"
#include "ducklearn/stream/adaptive.hpp"
#include "ducklearn/stream/learner.hpp"

namespace ducklearn {

DUCKLEARN_EXPORT void save_config(const OptimizerConfig& c, StateDict& out,
                                  const std::string& prefix);
DUCKLEARN_EXPORT OptimizerConfig load_optimizer_config(const StateDict& in,
                                                       const std::string& prefix);
DUCKLEARN_EXPORT void save_config(const AdaptationConfig& c, StateDict& out,
                                  const std::string& prefix);
DUCKLEARN_EXPORT AdaptationConfig load_adaptation_config(const StateDict& in,
                                                         const std::string& prefix);

DUCKLEARN_EXPORT void save_state(const Learner& learner, StateDict& out,
                                 const std::string& prefix);
DUCKLEARN_EXPORT Learner load_learner(const StateDict& in, const std::string& prefix);

}  // namespace ducklearn
