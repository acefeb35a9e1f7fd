// What the timeline and the line chart share: one palette for series, and the legend entry of a series.

export const SERIES_COLORS = ["#4c6ef5", "#f08c00", "#12b886", "#e64980", "#7950f2", "#15aabf", "#82c91e", "#fa5252", "#be4bdb", "#fab005"];

/** A legend entry: a colour swatch and a text. */
export function legendItem(color, text) {
  const item = document.createElement("span");
  item.className = "timeline-legend-item";
  const swatch = document.createElement("i");
  swatch.style.background = color;
  item.append(swatch, text);
  return item;
}
