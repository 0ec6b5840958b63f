# DP bubble and padding by strategy, as grouped bars in percent. The .dat's header line names the
# two series (for a plan-only report the bubble is the cost model's prediction, and says so).
# Variables (gnuplot -e): data = the .dat that `labench report` writes (strategy, bubble %, padding %),
# out = the image, fmt = png | svg (default: from out's name), subtitle = a line under the title.
if (!exists("data")) data = 'bubble_padding.dat'
if (!exists("out")) out = 'bubble_padding.png'
if (!exists("fmt")) fmt = strstrt(out, '.svg') > 0 ? 'svg' : 'png'
if (!exists("subtitle")) subtitle = ''
W = 900; H = 520
if (fmt eq 'svg') { set terminal svg size W,H font 'Sans,12' background '#ffffff' noenhanced } \
else { set terminal pngcairo size W,H font 'Sans,11' background '#ffffff' noenhanced }
set output out

set title "Data-parallel bubble and padding by strategy\n".subtitle
set ylabel 'share of time or of computed tokens (%)'
set xlabel 'strategy'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border rgb '#333333'
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set grid ytics
set xtics nomirror
set ytics nomirror
set key top right
plot data using 2:xtic(1) title columnheader(2) lc rgb '#ee6677', \
     '' using 3 title columnheader(3) lc rgb '#bbbbbb'
