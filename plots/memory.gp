# Peak memory by strategy (the backend allocator's high-water mark during the run), one bar each.
# Variables (gnuplot -e): data = the .dat that `labench report` writes (strategy, MiB),
# out = the image, fmt = png | svg (default: from out's name), subtitle = a line under the title.
if (!exists("data")) data = 'memory.dat'
if (!exists("out")) out = 'memory.png'
if (!exists("fmt")) fmt = strstrt(out, '.svg') > 0 ? 'svg' : 'png'
if (!exists("subtitle")) subtitle = ''
W = 900; H = 520
if (fmt eq 'svg') { set terminal svg size W,H font 'Sans,12' background '#ffffff' noenhanced } \
else { set terminal pngcairo size W,H font 'Sans,11' background '#ffffff' noenhanced }
set output out
set linetype 1 lc rgb '#4477aa'; set linetype 2 lc rgb '#ee6677'; set linetype 3 lc rgb '#228833'
set linetype 4 lc rgb '#ccbb44'; set linetype 5 lc rgb '#66ccee'; set linetype 6 lc rgb '#aa3377'
set linetype 7 lc rgb '#222222'; set linetype 8 lc rgb '#bbbbbb'; set linetype cycle 8

set title "Peak memory by strategy (allocator high-water mark)\n".subtitle
set ylabel 'peak memory (MiB)'
set xlabel 'strategy'
set style fill solid 0.85 border rgb '#333333'
set boxwidth 0.6
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set grid ytics
set xtics nomirror
set ytics nomirror
unset key
plot data using 0:2:($0 + 1):xtic(1) with boxes lc variable, \
     '' using 0:2:(sprintf('%.1f', $2)) with labels offset 0, 0.8
