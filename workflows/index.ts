// Everything the control worker registers as workflows.
export { miningCycle, statusQuery } from './cycle';
