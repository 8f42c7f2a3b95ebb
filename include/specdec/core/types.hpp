// Basic vocabulary types shared by every layer of specdec.
#pragma once

#include <cstdint>

namespace specdec {

using token_id = std::int32_t;  // index into the model's vocabulary

}  // namespace specdec
