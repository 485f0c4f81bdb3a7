// The subnets this build speaks. A new subnet is a folder beside connito/ and a line here.
import { connito } from './connito';
import { gradients } from './gradients';

export const SUBNETS = [connito, gradients] as const;
export { connito, gradients };
