/// <reference lib="dom" />
/**
 * The readers the report's check runs inside Chromium (installed once a page is open, as
 * `window.certflow`): they judge what Chromium paints, not the markup — the computed `d` of a
 * path, the computed clip/mask/filter/dash styles, the colours after opacity against the plot's
 * own fill, and hit-testing (document.elementsFromPoint) for what is topmost at a point.
 *
 * What may be painted above a chart element (the chart's own later layers, each a thin or
 * translucent kind that cannot hide it): later series paths (stroke only, ≤ 4 px), the grid
 * lines and tick texts (`data-grid`, lines ≤ 2 px, text ≤ 16 px), band labels (text ≤ 16 px) and
 * other bands (fill ≤ 0.3 opaque). Anything else topmost where the element should be — another
 * shape, an HTML element or pseudo-element over the chart — covers it.
 *
 * Everything here must be self-contained: Playwright sends `installInPage` to the page as text.
 */
export type Point = [number, number];

export interface InPage {
  /** Why `el` (painted with `paint`: fill, stroke or color) is not seen, or null. */
  hidden(el: Element, paint: 'fill' | 'stroke' | 'color', minOpacity: number): string | null;
  /** The subpaths Chromium draws for a path (its computed `d`), in viewport pixels; throws on curves. */
  subpaths(el: SVGGraphicsElement): Point[][];
  /**
   * Hit-tests `points`: a string when something not allowed is topmost over `el` at one of them,
   * else how many points find `el` (or a descendant) topmost; with `along`, a point that misses
   * is retried up to 6 px each way along that direction (a dash gap).
   */
  hits(el: Element, points: Point[], along?: Point[]): number | string;
  /**
   * What hit-testing cannot see, so the check cannot judge: elements with pointer-events none
   * (an overlay that elementsFromPoint skips) and generated ::before/::after content. The report
   * has neither; each found is named.
   */
  untestable(): string[];
  /** WCAG contrast of `el`'s paint (after its opacities) against the fill of its plot area. */
  contrast(el: Element, paint: 'fill' | 'stroke', plot: Element): number;
}

export function installInPage(): void {
  type RGB = [number, number, number];
  const rgba = (color: string): [number, number, number, number] | null => {
    const n = (color.match(/[\d.]+/g) ?? []).map(Number);
    return n.length >= 3 ? [n[0]!, n[1]!, n[2]!, n[3] ?? 1] : null;
  };
  const ancestry = (el: Element): Element[] => {
    const all: Element[] = [];
    for (let e: Element | null = el; e; e = e.parentElement) all.push(e);
    return all;
  };
  const opacityOf = (el: Element): number =>
    ancestry(el).reduce((o, e) => o * Number(getComputedStyle(e).opacity), 1);

  /** A paint over `under`: the colour after the element's opacities. */
  const composite = (el: Element, paint: string, under: RGB): RGB => {
    const cs = getComputedStyle(el);
    const c = rgba(cs.getPropertyValue(paint));
    if (!c) return under;
    const a = c[3] * Number(cs.getPropertyValue(`${paint}-opacity`) || 1) * opacityOf(el);
    return [0, 1, 2].map((i) => a * c[i]! + (1 - a) * under[i]!) as RGB;
  };
  const luminance = (c: RGB): number => {
    const [r, g, b] = c.map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    }) as RGB;
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a: RGB, b: RGB): number => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
    return (hi + 0.05) / (lo + 0.05);
  };
  /** The plot area's fill as painted: over the chart's background rect, over white. */
  const plotFill = (plot: Element): RGB => {
    const background = plot.closest('svg')?.querySelector(':scope > rect');
    const page: RGB = [255, 255, 255];
    return composite(plot, 'fill', background ? composite(background, 'fill', page) : page);
  };

  const hidden: InPage['hidden'] = (el, paint, minOpacity) => {
    for (const e of ancestry(el)) {
      const cs = getComputedStyle(e);
      const at = ` on ${e.tagName}`;
      if (cs.display === 'none') return `display: none${at}`;
      if (cs.clipPath !== 'none') return `clip-path: ${cs.clipPath}${at}`;
      if (cs.clip && cs.clip !== 'auto') return `clip: ${cs.clip}${at}`;
      if (cs.maskImage && cs.maskImage !== 'none') return `mask: ${cs.maskImage}${at}`;
      if (cs.filter !== 'none') return `filter: ${cs.filter}${at}`;
    }
    const cs = getComputedStyle(el);
    if (cs.visibility !== 'visible') return `visibility: ${cs.visibility}`;
    const color = rgba(cs.getPropertyValue(paint));
    if (!color) return `${paint}: ${cs.getPropertyValue(paint) || 'none'}`;
    const opacity = color[3] * opacityOf(el) * Number(cs.getPropertyValue(`${paint}-opacity`) || 1);
    if (opacity < minOpacity) return `opacity ${opacity.toFixed(3)}`;
    if (paint === 'stroke') {
      const scale = (el as SVGGraphicsElement).getScreenCTM()?.a ?? 1;
      if (!(parseFloat(cs.strokeWidth) * scale >= 1)) return `stroke-width ${cs.strokeWidth}`;
      if (cs.strokeDasharray !== 'none') {
        let dash = cs.strokeDasharray.split(/[\s,]+/).map(parseFloat);
        if (dash.length % 2) dash = [...dash, ...dash];
        const on = dash.filter((_, i) => i % 2 === 0);
        const total = dash.reduce((a, b) => a + b, 0);
        if (Math.min(...on) < 2 || on.reduce((a, b) => a + b, 0) / total < 0.4)
          return `stroke-dasharray ${cs.strokeDasharray} leaves too little of the line`;
      }
    }
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) return 'nothing drawn (empty box)';
    const page = document.documentElement;
    if (box.left < 0 || box.top < 0 || box.right > page.scrollWidth || box.bottom > page.scrollHeight)
      return `outside the page (${Math.round(box.left)}, ${Math.round(box.top)})`;
    return null;
  };

  const subpaths: InPage['subpaths'] = (el) => {
    const css = getComputedStyle(el).getPropertyValue('d');
    const d =
      css && css !== 'none' ? (/^path\("(.*)"\)$/.exec(css)?.[1] ?? '') : (el.getAttribute('d') ?? '');
    const tokens = d.match(/[a-zA-Z]|-?[\d.]+(?:e-?\d+)?/g) ?? [];
    const out: Point[][] = [];
    let [x, y] = [0, 0];
    let command = '';
    for (let i = 0; i < tokens.length;) {
      if (/[a-zA-Z]/.test(tokens[i]!)) command = tokens[i++]!;
      const num = (): number => Number(tokens[i++]);
      const rel = command === command.toLowerCase();
      switch (command.toUpperCase()) {
        case 'M':
        case 'L': {
          const [nx, ny] = [num(), num()];
          [x, y] = rel ? [x + nx, y + ny] : [nx, ny];
          if (command.toUpperCase() === 'M') {
            out.push([]);
            command = rel ? 'l' : 'L';
          }
          break;
        }
        case 'H':
          x = rel ? x + num() : num();
          break;
        case 'V':
          y = rel ? y + num() : num();
          break;
        default:
          throw new Error(`a series path with command "${command}" (${d.slice(0, 80)})`);
      }
      out.at(-1)?.push([x, y]);
    }
    const ctm = el.getScreenCTM()!;
    return out.map((s) =>
      s.map(([px, py]) => {
        const q = new DOMPoint(px, py).matrixTransform(ctm);
        return [q.x, q.y] as Point;
      }),
    );
  };

  /** May `e` be painted above a chart element? (See the module's doc.) */
  const allowedAbove = (e: Element): boolean => {
    const cs = getComputedStyle(e);
    const small = parseFloat(cs.fontSize) <= 16;
    if (e.matches('path[data-series]')) return cs.fill === 'none' && parseFloat(cs.strokeWidth) <= 4;
    if (e.matches('line[data-grid]')) return parseFloat(cs.strokeWidth) <= 2;
    if (e.matches('text[data-grid], text[data-marker-label]')) return small;
    if (e.matches('rect[data-marker]'))
      return Number(cs.fillOpacity) * opacityOf(e) <= 0.3 && cs.stroke !== 'none';
    return false;
  };
  /** At a point: 'hit' (el topmost, past allowed layers), 'miss' (nothing above, el not there) or what covers it. */
  const at = (el: Element, [px, py]: Point): string => {
    const svg = el.closest('svg');
    for (const e of document.elementsFromPoint(px, py)) {
      if (e === el || el.contains(e)) return 'hit';
      if (e === svg || (svg === null && e.contains(el))) return 'miss';
      if (svg?.contains(e) && e.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING) return 'miss';
      if (allowedAbove(e) && svg?.contains(e)) continue;
      return `covered at (${Math.round(px)}, ${Math.round(py)}) by <${e.tagName.toLowerCase()} ${[...e.attributes].map((a) => a.name).join(' ')}>`;
    }
    return 'miss';
  };
  const hits: InPage['hits'] = (el, points, along) => {
    let found = 0;
    for (const [i, p] of points.entries()) {
      let result = at(el, p);
      const [dx, dy] = along?.[i] ?? [0, 0];
      for (let step = 1; result === 'miss' && along && step <= 12; step++) {
        const k = (step % 2 ? 1 : -1) * Math.ceil(step / 2);
        result = at(el, [p[0] + k * dx, p[1] + k * dy]);
      }
      if (result === 'hit') found++;
      else if (result !== 'miss') return result;
    }
    return found;
  };

  const contrast: InPage['contrast'] = (el, paint, plot) => {
    const under = plotFill(plot);
    return ratio(composite(el, paint, under), under);
  };

  const untestable: InPage['untestable'] = () =>
    [...document.querySelectorAll('*')].flatMap((e) => {
      const name = `<${e.tagName.toLowerCase()} ${[...e.attributes].map((a) => a.name).join(' ')}>`;
      return [
        ...(getComputedStyle(e).pointerEvents === 'none' ? [`pointer-events: none on ${name}`] : []),
        ...['::before', '::after'].flatMap((pseudo) => {
          const content = getComputedStyle(e, pseudo).content;
          return content && content !== 'none' && content !== 'normal'
            ? [`${pseudo} content on ${name}`]
            : [];
        }),
      ];
    });

  (window as unknown as { certflow: InPage }).certflow = { hidden, subpaths, hits, untestable, contrast };
}
