// An exponential moving average of the weights (Polyak averaging). Its decay warms up as
// min(decay, (1 + n) / (10 + n)) so early averages are not dominated by the random init.
import * as tf from '@tensorflow/tfjs-core';
import { variableOf, type Weights } from './gpt';

export class Ema {
  readonly shadow: Weights = new Map();

  constructor(
    weights: Weights,
    readonly decay: number,
    public updates = 0,
  ) {
    for (const [name, w] of weights) this.shadow.set(name, variableOf(w.clone(), false));
  }

  update(weights: Weights): void {
    const d = Math.min(this.decay, (1 + this.updates) / (10 + this.updates));
    this.updates += 1;
    tf.tidy(() => {
      for (const [name, w] of weights) {
        const s = this.shadow.get(name)!;
        s.assign(tf.add(tf.mul(s, d), tf.mul(w, 1 - d)));
      }
    });
  }

  dispose(): void {
    for (const s of this.shadow.values()) s.dispose();
  }
}
