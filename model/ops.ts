// Two ops with hand-written gradients for the wasm backend, which has no UnsortedSegmentSum kernel
// (the gradient of tf.gather) and runs transposed matMuls 13–50× slower than plain ones:
//  - embed: backward is oneHot(ids)ᵀ · dy, a plain matMul;
//  - matmul: backward transposes explicitly, then does plain matMuls.
// libtensorflow (tfjs-node) has both kernels natively, so there the ops use tfjs's own gradients.
import * as tf from '@tensorflow/tfjs-core';
import type { CustomGradientFunc } from '@tensorflow/tfjs-core/dist/engine';

const nativeGradients = () => tf.getBackend() === 'tensorflow';

/** Swaps the last two axes (rank 2 or 3). */
export function swapLast(x: tf.Tensor): tf.Tensor {
  return x.rank === 2 ? tf.transpose(x) : tf.transpose(x, [0, 2, 1]);
}

/** Rows of `table` picked by `ids` (int32, rank 1). */
export function embed(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  if (nativeGradients()) return tf.gather(table, ids);
  const vocab = table.shape[0];
  const op = tf.customGrad(((t: tf.Tensor, save: tf.GradSaveFunc) => {
    // Saved, not captured: `ids` may be an intermediate the forward pass disposes before backward.
    save([ids]);
    return {
      value: tf.gather(t, ids),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.matMul(tf.transpose(tf.cast(tf.oneHot(saved[0] as tf.Tensor1D, vocab), 'float32')), dy),
    };
  }) as unknown as CustomGradientFunc<tf.Tensor>);
  return op(table) as tf.Tensor2D;
}

/** a · b for rank-2 or rank-3 (batched) tensors, with a backward pass free of transposed matMuls. */
export function matmul<T extends tf.Tensor>(a: T, b: tf.Tensor): T {
  if (nativeGradients()) return tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D) as unknown as T;
  const op = tf.customGrad(((x: tf.Tensor, y: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x, y]);
    return {
      value: tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ys] = saved;
        return [
          tf.matMul(dy as tf.Tensor3D, swapLast(ys) as tf.Tensor3D),
          tf.matMul(swapLast(xs) as tf.Tensor3D, dy as tf.Tensor3D),
        ];
      },
    };
  }) as unknown as CustomGradientFunc<tf.Tensor>);
  return op(a, b) as T;
}
