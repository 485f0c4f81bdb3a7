// The subnets this build speaks. A new subnet is a folder beside connito/ and a line here.
import { connito } from './connito';

export const SUBNETS = [connito] as const;
export { connito };
