/** A horizontal bar chart as standalone SVG: no scripts, no fonts to fetch, readable on GitHub. */
export interface Bar {
  label: string;
  value: number;
}

const escape = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function barChartSvg(title: string, bars: Bar[], unit: string): string {
  const max = Math.max(1, ...bars.map((b) => b.value));
  const rowHeight = 28;
  const top = 30;
  const width = 860;
  const labelWidth = 420;
  const rows = bars
    .map((b, i) => {
      const w = Math.round(((width - labelWidth - 110) * b.value) / max);
      const y = top + i * rowHeight;
      return (
        `<text x="0" y="${y + 18}">${escape(b.label)}</text>` +
        `<rect x="${labelWidth}" y="${y + 5}" width="${w}" height="18" fill="#2f6fb0"/>` +
        `<text x="${labelWidth + w + 6}" y="${y + 18}">${b.value.toLocaleString('en-US')} ${escape(unit)}</text>`
      );
    })
    .join('\n');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${top + bars.length * rowHeight + 8}" ` +
    `font-family="sans-serif" font-size="13" role="img" aria-label="${escape(title)}">\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n<text x="0" y="18" font-weight="bold">${escape(title)}</text>\n${rows}\n</svg>\n`
  );
}
