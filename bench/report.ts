// The benchmark line format of DESIGN.md §4, so scripts can read it.
export function benchLine(
  name: string,
  ours: number,
  unit: string,
  reference: number,
  refUnit: string,
  ratio: number,
): string {
  const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(4));
  const line = `bench ${name}: ours=${fmt(ours)} ${unit} reference=${fmt(reference)} ${refUnit} ratio=${ratio.toFixed(3)}`;
  console.log(line);
  return line;
}

export function note(text: string): void {
  console.log(`  ${text}`);
}
