// Kernels of the CUDA backend: embedding rows, RMSNorm, bias + RoPE + K/V store, tree-masked
// attention, SwiGLU, the fixed-order weight product, the commit gather of K/V, zeroing a skipped
// layer's K/V, 16-bit conversion (cuBLAS inputs) and a per-row argmax.
//
// Batch invariance (docs/gpu.md): every value a row gets is computed by one thread, one warp or one
// block working on that row alone, with a reduction order that depends only on the lengths involved
// (n_embd, the key count), never on the number of rows or on the row's place in the launch. The
// arithmetic is spelled with the _rn intrinsics so that the compiler cannot contract or reorder it
// differently in two instantiations.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace specdec::cuda::kernels {

// What a row of the current forward is: its sequence (the cache region), its cache slot
// (n_past + pending index), its position (RoPE), its committed length and its ancestor list
// (pending slots at anc[anc_first .. anc_first + anc_count): its ancestors and itself, ascending).
struct row_meta {
  std::int32_t seq;
  std::int32_t slot;
  std::int32_t position;
  std::int32_t n_past;
  std::int32_t anc_first;
  std::int32_t anc_count;
};

// Shape of the K/V cache: [max_sequences][n_layers][n_head_kv][n_ctx][head_dim] fp32, K and V apart.
struct cache_shape {
  std::int32_t n_layers;
  std::int32_t n_head_kv;
  std::int32_t n_ctx;
  std::int32_t head_dim;

  __host__ __device__ std::size_t base(std::int32_t seq, std::int32_t layer, std::int32_t g) const {
    return ((static_cast<std::size_t>(seq) * static_cast<std::size_t>(n_layers) + static_cast<std::size_t>(layer)) *
                static_cast<std::size_t>(n_head_kv) +
            static_cast<std::size_t>(g)) *
           static_cast<std::size_t>(n_ctx) * static_cast<std::size_t>(head_dim);
  }
};

__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float widen(__half v) { return __half2float(v); }

template <class W>
__device__ __forceinline__ W narrow(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 narrow<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half narrow<__half>(float v) { return __float2half_rn(v); }

// 8 consecutive 16-bit weights (16-byte aligned) widened to fp32.
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float* out) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
  const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = __uint_as_float(words[i] << 16);
    out[2 * i + 1] = __uint_as_float(words[i] & 0xFFFF0000u);
  }
}
__device__ __forceinline__ void load8(const __half* p, float* out) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
  const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[i] & 0xFFFFu)));
    out[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[i] >> 16)));
  }
}

// Sum of one value per thread of a block of Threads threads, in a fixed tree; every thread gets it.
template <int Threads>
__device__ __forceinline__ float block_sum(float v, float* red) {
  red[threadIdx.x] = v;
  __syncthreads();
#pragma unroll
  for (int k = Threads / 2; k > 0; k >>= 1) {
    if (static_cast<int>(threadIdx.x) < k) red[threadIdx.x] = __fadd_rn(red[threadIdx.x], red[threadIdx.x + k]);
    __syncthreads();
  }
  const float s = red[0];
  __syncthreads();
  return s;
}

template <int Threads>
__device__ __forceinline__ float block_max(float v, float* red) {
  red[threadIdx.x] = v;
  __syncthreads();
#pragma unroll
  for (int k = Threads / 2; k > 0; k >>= 1) {
    if (static_cast<int>(threadIdx.x) < k) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + k]);
    __syncthreads();
  }
  const float s = red[0];
  __syncthreads();
  return s;
}

// x[r] = row tokens[r] of the embedding table, or (tokens[r] < 0) row emb_index[r] of emb.
// grid: n rows; block: any.
template <class W>
__global__ void embed_rows(const W* __restrict__ table, std::int32_t n_embd, const std::int32_t* __restrict__ tokens,
                           const std::int32_t* __restrict__ emb_index, const float* __restrict__ emb,
                           float* __restrict__ x) {
  const std::size_t r = blockIdx.x;
  const std::int32_t t = tokens[r];
  float* out = x + r * static_cast<std::size_t>(n_embd);
  if (t >= 0) {
    const W* src = table + static_cast<std::size_t>(t) * static_cast<std::size_t>(n_embd);
    for (std::int32_t e = threadIdx.x; e < n_embd; e += blockDim.x) out[e] = widen(src[e]);
  } else {
    const float* src = emb + static_cast<std::size_t>(emb_index[r]) * static_cast<std::size_t>(n_embd);
    for (std::int32_t e = threadIdx.x; e < n_embd; e += blockDim.x) out[e] = src[e];
  }
}

inline constexpr int norm_threads = 256;

// out[i] = x[rows[i]] / sqrt(mean(x^2) + eps) * w   (rows == nullptr: rows[i] = i). grid: output rows.
__global__ void __launch_bounds__(norm_threads)
    rms_norm(const float* __restrict__ x, const std::int32_t* __restrict__ rows, const float* __restrict__ w,
             float* __restrict__ out, std::int32_t n_embd, float eps) {
  __shared__ float red[norm_threads];
  const std::size_t i = blockIdx.x;
  const std::size_t r = rows != nullptr ? static_cast<std::size_t>(rows[i]) : i;
  const float* xr = x + r * static_cast<std::size_t>(n_embd);
  float s = 0.0f;
  for (std::int32_t e = threadIdx.x; e < n_embd; e += norm_threads) s = __fmaf_rn(xr[e], xr[e], s);
  const float total = block_sum<norm_threads>(s, red);
  const float mean = __fdiv_rn(total, static_cast<float>(n_embd));
  const float scale = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean, eps)));
  float* o = out + i * static_cast<std::size_t>(n_embd);
  for (std::int32_t e = threadIdx.x; e < n_embd; e += norm_threads) o[e] = __fmul_rn(__fmul_rn(xr[e], scale), w[e]);
}

struct rope_shape {
  std::int32_t n_head;
  std::int32_t n_head_kv;
  std::int32_t head_dim;
  std::int32_t n_rot;
  bool neox;
};

// Element d of one head after the rotation: pairs (2i, 2i+1) (normal) or (i, i + n_rot/2) (NeoX).
// head(i): element i of the head before the rotation; cs / sn: the position's cos / sin table [n_rot / 2].
template <class Head>
__device__ __forceinline__ float rotate(const Head& head, std::int32_t d, const rope_shape& s, const float* cs,
                                        const float* sn) {
  if (d >= s.n_rot) return head(d);
  const std::int32_t half = s.n_rot / 2;
  std::int32_t i, a, b;
  if (s.neox) {
    i = d < half ? d : d - half;
    a = i;
    b = i + half;
  } else {
    i = d / 2;
    a = 2 * i;
    b = 2 * i + 1;
  }
  const float x0 = head(a), x1 = head(b);
  if (d == a) return __fsub_rn(__fmul_rn(x0, cs[i]), __fmul_rn(x1, sn[i]));
  return __fadd_rn(__fmul_rn(x0, sn[i]), __fmul_rn(x1, cs[i]));
}

// One row of the Q/K/V product: adds the biases, rotates Q and K, writes Q to q_out [n, n_head *
// head_dim] and K, V to the row's cache slot of `layer`. Each output element is one thread's: it
// reads the (at most two) biased inputs its rotation needs. grid: n rows; block: any.
__global__ void bias_rope_store(const float* __restrict__ qkv, const float* __restrict__ bias,
                                const float* __restrict__ cos_table, const float* __restrict__ sin_table,
                                const row_meta* __restrict__ rows, float* __restrict__ q_out, float* __restrict__ kc,
                                float* __restrict__ vc, rope_shape s, cache_shape c, std::int32_t layer) {
  const std::size_t r = blockIdx.x;
  const std::int32_t qd = s.n_head * s.head_dim, kvd = s.n_head_kv * s.head_dim, cols = qd + 2 * kvd;
  const float* src = qkv + r * static_cast<std::size_t>(cols);
  const auto in = [&](std::int32_t j) { return bias != nullptr ? __fadd_rn(src[j], bias[j]) : src[j]; };
  const row_meta m = rows[r];
  const std::size_t half = static_cast<std::size_t>(s.n_rot / 2);
  const float* cs = cos_table + static_cast<std::size_t>(m.position) * half;
  const float* sn = sin_table + static_cast<std::size_t>(m.position) * half;
  for (std::int32_t j = threadIdx.x; j < qd; j += blockDim.x) {
    const std::int32_t h = j / s.head_dim, d = j % s.head_dim;
    const auto head = [&](std::int32_t e) { return in(h * s.head_dim + e); };
    q_out[r * static_cast<std::size_t>(qd) + j] = rotate(head, d, s, cs, sn);
  }
  for (std::int32_t j = threadIdx.x; j < kvd; j += blockDim.x) {
    const std::int32_t g = j / s.head_dim, d = j % s.head_dim;
    const auto head = [&](std::int32_t e) { return in(qd + g * s.head_dim + e); };
    const std::size_t at = c.base(m.seq, layer, g) + static_cast<std::size_t>(m.slot) * c.head_dim + d;
    kc[at] = rotate(head, d, s, cs, sn);
    vc[at] = in(qd + kvd + j);
  }
}

inline constexpr int attention_threads = 128;

// Tree-masked grouped-query attention. Row r, query head h (grid (n, n_head)) attends to the keys
// of its sequence's committed slots [0, n_past) followed by its pending ancestors and itself, in
// that order (the order of the same path run as a plain sequence); the key list alone fixes every
// sum: scores one thread per key (dot over head_dim in order), the softmax sum a per-thread strided
// run then a fixed tree, each output element one thread's run over the keys in order.
// scores: [n, n_head, max_keys] scratch. out: [n, n_head * head_dim].
__global__ void __launch_bounds__(attention_threads)
    tree_attention(const float* __restrict__ q, const row_meta* __restrict__ rows, const std::int32_t* __restrict__ anc,
                   const float* __restrict__ kc, const float* __restrict__ vc, float* __restrict__ scores,
                   std::int32_t max_keys, float* __restrict__ out, std::int32_t n_head, cache_shape c,
                   std::int32_t layer, float scale) {
  __shared__ float red[attention_threads];
  __shared__ float qs[256];
  const std::size_t r = blockIdx.x;
  const std::int32_t h = blockIdx.y;
  const std::int32_t hd = c.head_dim;
  const std::int32_t g = h / (n_head / c.n_head_kv);
  const row_meta m = rows[r];
  const std::int32_t n_keys = m.n_past + m.anc_count;
  const float* qh = q + r * static_cast<std::size_t>(n_head) * hd + static_cast<std::size_t>(h) * hd;
  for (std::int32_t d = threadIdx.x; d < hd; d += attention_threads) qs[d] = qh[d];
  __syncthreads();
  const std::size_t base = c.base(m.seq, layer, g);
  const auto slot_of = [&](std::int32_t k) { return k < m.n_past ? k : anc[m.anc_first + (k - m.n_past)]; };
  float* sc = scores + (r * static_cast<std::size_t>(n_head) + static_cast<std::size_t>(h)) * static_cast<std::size_t>(max_keys);

  float local_max = -INFINITY;
  for (std::int32_t k = threadIdx.x; k < n_keys; k += attention_threads) {
    const float* key = kc + base + static_cast<std::size_t>(slot_of(k)) * hd;
    float s = 0.0f;
    for (std::int32_t d = 0; d < hd; ++d) s = __fmaf_rn(qs[d], key[d], s);
    s = __fmul_rn(s, scale);
    sc[k] = s;
    local_max = fmaxf(local_max, s);
  }
  const float max_score = block_max<attention_threads>(local_max, red);
  float local_sum = 0.0f;
  for (std::int32_t k = threadIdx.x; k < n_keys; k += attention_threads) {
    const float p = expf(__fsub_rn(sc[k], max_score));
    sc[k] = p;
    local_sum = __fadd_rn(local_sum, p);
  }
  const float inv = __fdiv_rn(1.0f, block_sum<attention_threads>(local_sum, red));  // also orders sc[] writes
  float* o = out + r * static_cast<std::size_t>(n_head) * hd + static_cast<std::size_t>(h) * hd;
  for (std::int32_t d = threadIdx.x; d < hd; d += attention_threads) {
    float acc = 0.0f;
    for (std::int32_t k = 0; k < n_keys; ++k) {
      acc = __fmaf_rn(sc[k], vc[base + static_cast<std::size_t>(slot_of(k)) * hd + d], acc);
    }
    o[d] = __fmul_rn(acc, inv);
  }
}

// h[r][j] = silu(gate) * up with gate_up[r] = [gate (n_ff) | up (n_ff)]. One thread per element.
__global__ void swiglu(const float* __restrict__ gate_up, float* __restrict__ h, std::int32_t n, std::int32_t n_ff) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::size_t total = static_cast<std::size_t>(n) * static_cast<std::size_t>(n_ff);
  if (i >= total) return;
  const std::size_t r = i / static_cast<std::size_t>(n_ff), j = i % static_cast<std::size_t>(n_ff);
  const float g = gate_up[r * 2 * static_cast<std::size_t>(n_ff) + j];
  const float u = gate_up[r * 2 * static_cast<std::size_t>(n_ff) + static_cast<std::size_t>(n_ff) + j];
  h[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

// The fixed-order weight product: y[r][j] (+)= dot(w[j], x[r]) for r < n, j < out, W row-major
// [out, in] (in a multiple of 8, rows 16-byte aligned), x [n, in] fp32, y [n, out] fp32.
// One warp owns output column j: lane l accumulates, in order, the elements
// k = 8l + 256t + e (t = 0, 1, ...; e = 0..7) by fma from 0, then the 32 lane sums are folded by
// a xor butterfly (offsets 16, 8, 4, 2, 1). That order depends on `in` only: neither the number of
// rows, nor the block a row falls in (rows are processed gemm_rows at a time, each row with its own
// accumulator), nor the rows beside it change a bit. Each block holds gemm_warps columns and up to
// gemm_block_rows rows; the weight row is re-read per group of rows from L1/L2.
inline constexpr int gemm_warps = 8;
inline constexpr int gemm_rows = 8;
inline constexpr int gemm_block_rows = 32;

template <class W>
__global__ void __launch_bounds__(gemm_warps * 32)
    fixed_order_gemm(const W* __restrict__ w, std::int32_t out, std::int32_t in, const float* __restrict__ x,
                     std::int32_t n, float* __restrict__ y, bool accumulate) {
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const std::int32_t j = static_cast<std::int32_t>(blockIdx.x) * gemm_warps + warp;
  if (j >= out) return;
  const W* wr = w + static_cast<std::size_t>(j) * static_cast<std::size_t>(in);
  const std::int32_t r_begin = static_cast<std::int32_t>(blockIdx.y) * gemm_block_rows;
  const std::int32_t r_end = min(n, r_begin + gemm_block_rows);
  for (std::int32_t r0 = r_begin; r0 < r_end; r0 += gemm_rows) {
    const std::int32_t nr = min(gemm_rows, r_end - r0);
    float acc[gemm_rows];
#pragma unroll
    for (int i = 0; i < gemm_rows; ++i) acc[i] = 0.0f;
    for (std::int32_t k = lane * 8; k < in; k += 256) {
      float wv[8];
      load8(wr + k, wv);
#pragma unroll
      for (int i = 0; i < gemm_rows; ++i) {
        if (i < nr) {
          const float4* xp = reinterpret_cast<const float4*>(x + static_cast<std::size_t>(r0 + i) * static_cast<std::size_t>(in) + k);
          const float4 a = xp[0], b = xp[1];
          float s = acc[i];
          s = __fmaf_rn(wv[0], a.x, s);
          s = __fmaf_rn(wv[1], a.y, s);
          s = __fmaf_rn(wv[2], a.z, s);
          s = __fmaf_rn(wv[3], a.w, s);
          s = __fmaf_rn(wv[4], b.x, s);
          s = __fmaf_rn(wv[5], b.y, s);
          s = __fmaf_rn(wv[6], b.z, s);
          s = __fmaf_rn(wv[7], b.w, s);
          acc[i] = s;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < gemm_rows; ++i) {
      if (i < nr) {  // nr is the same for every lane of the warp: the shuffles stay convergent
        float v = acc[i];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
        if (lane == 0) {
          float* yp = y + static_cast<std::size_t>(r0 + i) * static_cast<std::size_t>(out) + j;
          *yp = accumulate ? __fadd_rn(*yp, v) : v;
        }
      }
    }
  }
}

// dst[i] = src[i] rounded to W (cuBLAS inputs).
template <class W>
__global__ void to_16bit(const float* __restrict__ src, W* __restrict__ dst, std::size_t count) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) dst[i] = narrow<W>(src[i]);
}

// The K/V of every row of this forward in `layer` set to zero (a layer the forward skips).
// grid: n rows; block: any.
__global__ void zero_kv(const row_meta* __restrict__ rows, float* __restrict__ kc, float* __restrict__ vc, cache_shape c,
                        std::int32_t layer) {
  const row_meta m = rows[blockIdx.x];
  const std::int32_t kvd = c.n_head_kv * c.head_dim;
  for (std::int32_t j = threadIdx.x; j < kvd; j += blockDim.x) {
    const std::int32_t g = j / c.head_dim, d = j % c.head_dim;
    const std::size_t at = c.base(m.seq, layer, g) + static_cast<std::size_t>(m.slot) * c.head_dim + d;
    kc[at] = 0.0f;
    vc[at] = 0.0f;
  }
}

// Commit: slot n_past + k <- slot n_past + path[k] for k = 0 .. len-1, every layer and group, K and
// V. path is increasing with path[k] >= k, so walking k upwards never overwrites a source still to
// be read; one thread owns one (layer, group, element) column and walks k in order.
__global__ void commit_gather(float* __restrict__ kc, float* __restrict__ vc, cache_shape c, std::int32_t seq,
                              std::int32_t n_past, const std::int32_t* __restrict__ path, std::int32_t len) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::size_t per_layer = static_cast<std::size_t>(c.n_head_kv) * c.head_dim;
  if (i >= per_layer * static_cast<std::size_t>(c.n_layers)) return;
  const auto l = static_cast<std::int32_t>(i / per_layer);
  const auto g = static_cast<std::int32_t>(i % per_layer / static_cast<std::size_t>(c.head_dim));
  const auto d = static_cast<std::size_t>(i % static_cast<std::size_t>(c.head_dim));
  const std::size_t base = c.base(seq, l, g) + d;
  for (std::int32_t k = 0; k < len; ++k) {
    if (path[k] == k) continue;
    const std::size_t to = base + static_cast<std::size_t>(n_past + k) * c.head_dim;
    const std::size_t from = base + static_cast<std::size_t>(n_past + path[k]) * c.head_dim;
    kc[to] = kc[from];
    vc[to] = vc[from];
  }
}

inline constexpr int argmax_threads = 256;

// Per row of logits [rows, cols]: the largest value and its lowest index (NaNs ignored).
__global__ void __launch_bounds__(argmax_threads)
    row_argmax(const float* __restrict__ logits, std::int32_t cols, std::int32_t* __restrict__ index,
               float* __restrict__ value) {
  __shared__ float best_v[argmax_threads];
  __shared__ std::int32_t best_i[argmax_threads];
  const float* row = logits + static_cast<std::size_t>(blockIdx.x) * static_cast<std::size_t>(cols);
  float bv = -INFINITY;
  std::int32_t bi = -1;
  for (std::int32_t j = threadIdx.x; j < cols; j += argmax_threads) {
    const float v = row[j];
    if (v > bv || (bi < 0 && v == bv)) {  // strictly greater keeps the lowest index of this thread's run
      bv = v;
      bi = j;
    }
  }
  best_v[threadIdx.x] = bv;
  best_i[threadIdx.x] = bi;
  __syncthreads();
  for (int k = argmax_threads / 2; k > 0; k >>= 1) {
    if (static_cast<int>(threadIdx.x) < k) {
      const float ov = best_v[threadIdx.x + k];
      const std::int32_t oi = best_i[threadIdx.x + k];
      const float mv = best_v[threadIdx.x];
      const std::int32_t mi = best_i[threadIdx.x];
      if (oi >= 0 && (mi < 0 || ov > mv || (ov == mv && oi < mi))) {
        best_v[threadIdx.x] = ov;
        best_i[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    index[blockIdx.x] = best_i[0] < 0 ? 0 : best_i[0];
    value[blockIdx.x] = best_v[0];
  }
}

// kernel<<<grid, block, 0, stream>>>(args...): the backend's one way to launch a kernel, so that the
// same host code also runs under the CPU emulator of the tests (tests/cuda/emulation, which defines
// SPECDEC_CUDA_EMULATION). No kernel uses dynamic shared memory. `name` names the kernel in the
// emulator's reports; SPECDEC_CUDA_LAUNCHED after the call reports a bad configuration.
template <class... P, class... A>
inline void launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t stream, A&&... args) {
#if defined(SPECDEC_CUDA_EMULATION)
  ::specdec_emu::launch(name, kernel, grid, block, 0, stream, std::forward<A>(args)...);
#else
  (void)name;
  kernel<<<grid, block, 0, stream>>>(static_cast<P>(std::forward<A>(args))...);
#endif
}

}  // namespace specdec::cuda::kernels
