// The addon's GPU paths: results equal to the CPU's, the first encoder step's check against the
// CPU, and what each call does when the GPU fails. They run where the build has a CUDA device: on a
// GPU machine with the CUDA build, and in `bash scripts/check-cuda-emulated.sh` (part of .ci/run),
// whose addon has one emulated device. That device's faults (LABORSPACE_EMULATED_CUDA_FAULT, read
// at every CUDA call) test the fall-backs, which no real GPU shows on demand.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { Encoder, headLossStep, nativeInfo, topk, topkAsync } from '../src/native.js';
import { assertClose, assertRejects, assertThrowsCode, randomMatrix } from './helpers.js';
import { BATCH, CPU, cosine, TIMING, TINY, tinyParams } from './tiny-encoder.js';

const cuda = nativeInfo().cuda;
const emulated = cuda.name?.startsWith('emulated') ?? false;

/** Runs body (sync or async) with the emulated device misbehaving as `fault` says. */
function withFault<T>(fault: 'fail' | 'drift', body: () => T): T {
  process.env.LABORSPACE_EMULATED_CUDA_FAULT = fault;
  const clear = () => delete process.env.LABORSPACE_EMULATED_CUDA_FAULT;
  let result: T;
  try {
    result = body();
  } catch (e) {
    clear();
    throw e;
  }
  if (result instanceof Promise) return result.finally(clear) as T;
  clear();
  return result;
}

/** One MNRL step of `encoder` on the tiny batch: the loss, embeddings and gradients. */
function step(encoder: Encoder, params: Float32Array) {
  const grad = new Float32Array(encoder.paramCount);
  const out = encoder.lossStep('mnrl', params, BATCH, grad, { scale: 7, weight: 0.5 });
  return { ...out, grad };
}

/** Two steps' results agree within tol: rounding for a GPU step against a CPU one, 0 for two CPU steps. */
function assertSameStep(got: ReturnType<typeof step>, want: ReturnType<typeof step>, tol: number, start: number): void {
  assert.ok(Math.abs(got.loss - want.loss) <= tol, `loss ${got.loss} vs ${want.loss}`);
  assert.equal(Array.from(got.embeddingIds), Array.from(want.embeddingIds));
  assertClose(got.embeddingRows, want.embeddingRows, tol, 'embedding rows');
  assertClose(got.grad.subarray(start), want.grad.subarray(start), tol, 'arena gradients');
}

const OnGpu = suite('the GPU paths');

if (cuda.devices === 0) {
  console.log(`  no CUDA device in this build (${cuda.compiled ? 'none answers' : 'CPU only'}): the GPU paths run in bash scripts/check-cuda-emulated.sh and on a GPU`);
} else {
  OnGpu('should give on the GPU the encoder embeddings, loss and gradients of the CPU, and keep the GPU once its first step agrees', () => {
    const gpu = new Encoder(TINY, TIMING, { device: 'cuda' });
    const cpu = new Encoder(TINY, TIMING, CPU);
    assert.is(new Encoder(TINY, TIMING).device, 'cuda', "'auto' takes the GPU");
    const params = tinyParams(cpu, 30);
    const ge = gpu.forward(params, BATCH), ce = cpu.forward(params, BATCH);
    for (let s = 0; s < 4; s++) assert.ok(cosine(ge, s, ce, s, TINY.headOut) >= 0.99999, `text ${s}: cosine ${cosine(ge, s, ce, s, TINY.headOut)}`);
    assertClose(gpu.pooled(), cpu.pooled(), 1e-5, 'pooled states');
    const weights = randomMatrix(4, TINY.headOut, 31);
    const gg = new Float32Array(cpu.paramCount), cg = new Float32Array(cpu.paramCount);
    const gb = gpu.backward(params, weights, gg), cb = cpu.backward(params, weights, cg);
    assert.equal(Array.from(gb.embeddingIds), Array.from(cb.embeddingIds));
    assertClose(gb.embeddingRows, cb.embeddingRows, 1e-5, 'backward: embedding rows');
    const start = cpu.layout[1].offset;
    assertClose(gg.subarray(start), cg.subarray(start), 1e-5, 'backward: arena gradients');
    assertSameStep(step(gpu, params), step(cpu, params), 1e-5, start);
    assert.is(gpu.device, 'cuda', 'the first step agreed with the CPU');
  });

  OnGpu('should give the top-k and the head step of the CPU on the GPU, sync and async', async () => {
    const q = randomMatrix(7, 33, 40), x = randomMatrix(300, 33, 41);
    const mask = Uint8Array.from({ length: 300 }, (_, i) => (i % 7 === 3 ? 0 : 1));
    const want = topk(q, x, 33, { k: 5, mask, device: 'cpu' });
    for (const got of [topk(q, x, 33, { k: 5, mask, device: 'cuda' }), await topkAsync(q, x, 33, { k: 5, mask, device: 'cuda' })]) {
      assert.is(got.device, 'cuda');
      assert.equal(Array.from(got.indices), Array.from(want.indices));
      assertClose(got.scores, want.scores, 1e-5, 'top-k scores');
    }
    assert.is(topk(q, x, 33, { k: 5 }).device, 'cpu', "'auto' keeps small work on the CPU");
    const xs = randomMatrix(12, 9, 42), w = randomMatrix(8, 9, 43), b = randomMatrix(1, 8, 44);
    const hc = headLossStep('mnrl', xs, 9, w, b, 8, { device: 'cpu' }), hg = headLossStep('mnrl', xs, 9, w, b, 8, { device: 'cuda' });
    assert.is(hg.device, 'cuda');
    assert.ok(Math.abs(hg.loss - hc.loss) < 1e-5, `head loss ${hg.loss} vs ${hc.loss}`);
    assertClose(hg.gradWeight!, hc.gradWeight!, 1e-5, 'head dW');
    assertClose(hg.gradBias!, hc.gradBias!, 1e-5, 'head dbias');
  });

  if (!emulated) {
    console.log(`  a real GPU (${cuda.name}): the fall-backs are tested on the emulated device, whose faults can be set`);
  } else {
    OnGpu('should move an encoder to the CPU for good when its first GPU step disagrees, and give the CPU step', () => {
      const gpu = new Encoder(TINY, TIMING), cpu = new Encoder(TINY, TIMING, CPU);
      const params = tinyParams(cpu, 32);
      const got = withFault('drift', () => step(gpu, params));
      assert.is(gpu.device, 'cpu', 'a drifting GPU is left');
      assertSameStep(got, step(cpu, params), 0, cpu.layout[1].offset);
      assert.is(step(gpu, params).loss, got.loss, 'the next step runs on the CPU too');
    });

    OnGpu("should take a failed GPU step again on the CPU on 'auto', and throw on 'cuda' while keeping the GPU", () => {
      const cpu = new Encoder(TINY, TIMING, CPU);
      const params = tinyParams(cpu, 33), start = cpu.layout[1].offset;
      const want = step(cpu, params);
      const auto = new Encoder(TINY, TIMING);
      assertSameStep(step(auto, params), want, 1e-5, start);
      assert.is(auto.device, 'cuda', 'the first step agreed');
      assertSameStep(withFault('fail', () => step(auto, params)), want, 0, start);
      assert.is(auto.device, 'cpu', 'a GPU that failed is left for good');

      const demanded = new Encoder(TINY, TIMING, { device: 'cuda' });
      step(demanded, params);
      withFault('fail', () => {
        assertThrowsCode(() => step(demanded, params), Error, 'ERR_LABORSPACE_DEVICE', /CUDA: .*illegal memory access was encountered \(emulated device\)/);
        assertThrowsCode(() => demanded.forward(params, BATCH), Error, 'ERR_LABORSPACE_DEVICE', /illegal memory access/);
      });
      assert.is(demanded.device, 'cuda', "'cuda' keeps the GPU");
      assertSameStep(step(demanded, params), want, 1e-5, start);
    });

    OnGpu('should give the forward pass on the CPU when the GPU fails in it, and ask for it again when the GPU fails in backward', () => {
      const cpu = new Encoder(TINY, TIMING, CPU);
      const params = tinyParams(cpu, 34), weights = randomMatrix(4, TINY.headOut, 35);
      const forwardLost = new Encoder(TINY, TIMING);
      const e = withFault('fail', () => forwardLost.forward(params, BATCH));
      assert.is(forwardLost.device, 'cpu');
      assert.equal(Array.from(e), Array.from(cpu.forward(params, BATCH)), 'the CPU forward pass');

      const backwardLost = new Encoder(TINY, TIMING);
      backwardLost.forward(params, BATCH);
      const grad = new Float32Array(cpu.paramCount);
      withFault('fail', () =>
        assertThrowsCode(() => backwardLost.backward(params, weights, grad), Error, 'ERR_LABORSPACE_DEVICE', /the GPU failed in the backward pass; the encoder runs on the CPU from now on: run forward again/),
      );
      assert.is(backwardLost.device, 'cpu');
      assertThrowsCode(() => backwardLost.backward(params, weights, grad), Error, 'ERR_LABORSPACE_STATE', /backward needs a forward pass first/);
      backwardLost.forward(params, BATCH);
      const want = new Float32Array(cpu.paramCount);
      cpu.forward(params, BATCH);
      cpu.backward(params, weights, want);
      backwardLost.backward(params, weights, grad);
      assert.equal(Array.from(grad), Array.from(want), 'the CPU backward pass');
    });

    OnGpu("should open an encoder on the CPU on 'auto' when the GPU cannot take it, and refuse on 'cuda'", () => {
      withFault('fail', () => {
        assert.is(new Encoder(TINY, TIMING).device, 'cpu');
        assertThrowsCode(() => new Encoder(TINY, TIMING, { device: 'cuda' }), Error, 'ERR_LABORSPACE_DEVICE', /out of memory \(emulated device\)/);
      });
    });

    OnGpu("should take a failed top-k or head step again on the CPU on 'auto', and throw on 'cuda'", async () => {
      // Work above 'auto's threshold (5e8 multiply-adds), so that it picks the GPU.
      const q = randomMatrix(100, 500, 50), x = randomMatrix(10_000, 500, 51);
      const want = topk(q, x, 500, { k: 3, device: 'cpu' });
      await withFault('fail', async () => {
        for (const got of [topk(q, x, 500, { k: 3 }), await topkAsync(q, x, 500, { k: 3 })]) {
          assert.is(got.device, 'cpu');
          assert.equal(Array.from(got.indices), Array.from(want.indices));
        }
        assertThrowsCode(() => topk(q, x, 500, { k: 3, device: 'cuda' }), Error, 'ERR_LABORSPACE_DEVICE', /CUDA: cudaMalloc: out of memory/);
        await assertRejects(topkAsync(q, x, 500, { k: 3, device: 'cuda' }), Error, /CUDA: cudaMalloc: out of memory/, 'ERR_LABORSPACE_DEVICE');
      });
      const xs = randomMatrix(12, 9, 52), w = randomMatrix(8, 9, 53), b = randomMatrix(1, 8, 54);
      const hc = headLossStep('mnrl', xs, 9, w, b, 8, { device: 'cpu' });
      withFault('fail', () => {
        const hg = headLossStep('mnrl', xs, 9, w, b, 8);
        assert.is(hg.device, 'cpu');
        assert.is(hg.loss, hc.loss);
        assert.equal(Array.from(hg.gradWeight!), Array.from(hc.gradWeight!));
        assertThrowsCode(() => headLossStep('mnrl', xs, 9, w, b, 8, { device: 'cuda' }), Error, 'ERR_LABORSPACE_DEVICE', /CUDA: .*\(emulated device\)/);
      });
    });
  }
}

OnGpu.run();
