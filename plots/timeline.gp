# DP timeline (Gantt chart) of one optimizer step per strategy: one panel per strategy, one row
# per simulated rank; boxes are each micro-batch's compute, then the wait for the slowest rank at
# the sync point (the bubble), modelled communication, and the optimizer. All panels share the
# time axis so their lengths compare. .dat: one block per strategy (rank, start s, end s, kind:
# 0 compute, 1 waiting, 2 communication, 3 optimizer).
# Variables (gnuplot -e): data, out, fmt = png | svg (default: from out's name), subtitle;
# names = the strategies of the blocks in order (space-separated), steps / nsteps = the step each
# block shows and how many steps ran (space-separated), ranks = W.
if (!exists("data")) data = 'timeline.dat'
if (!exists("out")) out = 'timeline.png'
if (!exists("fmt")) fmt = strstrt(out, '.svg') > 0 ? 'svg' : 'png'
if (!exists("subtitle")) subtitle = ''
stats data using 3 nooutput
nb = STATS_blocks
tmax = STATS_max
if (!exists("ranks")) { stats data using 1 nooutput; ranks = int(STATS_max) + 1 }
if (!exists("names")) names = ''
if (!exists("steps")) steps = ''
if (!exists("nsteps")) nsteps = ''

# Pixel layout: a header, then per panel a label line, one row per rank, and its tick labels.
row = 22.0; above = 26.0; below = 36.0; head = 100.0
panel = above + row * ranks + below
W = 1100; H = int(head + panel * nb + 30)
if (fmt eq 'svg') { set terminal svg size W,H font 'Sans,12' background '#ffffff' noenhanced } \
else { set terminal pngcairo size W,H font 'Sans,11' background '#ffffff' noenhanced }
set output out

kind_color(k) = k == 0 ? 0x4477aa : k == 1 ? 0xee6677 : k == 2 ? 0x999999 : 0x228833
set style fill solid 0.9 border rgb '#ffffff'
set xrange [0 : tmax * 1.001]
set yrange [ranks - 0.5 : -0.5]
set ytics 1 format 'rank %.0f' nomirror
set xtics nomirror
set grid xtics
set lmargin at screen 0.09
set rmargin at screen 0.97
set multiplot title "DP timeline of one optimizer step per strategy\n".subtitle
do for [i = 0 : nb - 1] {
    ptop = H - head - i * panel - above
    set tmargin at screen ptop / H
    set bmargin at screen (ptop - row * ranks) / H
    name = word(names, i + 1)
    if (strlen(name) == 0) { name = sprintf('block %d', i) }
    if (strlen(word(steps, i + 1)) > 0) { set label 1 sprintf('%s: optimizer step %s of %s', name, word(steps, i + 1), word(nsteps, i + 1)) at graph 0, graph 1 left offset 0, 0.7 } \
    else { set label 1 name at graph 0, graph 1 left offset 0, 0.7 }
    if (i == nb - 1) { set xlabel 'time within the optimizer step (s)' } else { unset xlabel }
    if (i == 0) { set key at screen 0.5, screen (H - 52.0) / H center top horizontal maxrows 1 Left reverse samplen 1.5 width 2 } else { unset key }
    plot data index i using (($2 + $3) / 2):1:2:3:($1 - 0.4):($1 + 0.4):(kind_color($4)) \
             with boxxyerror lc rgb variable notitle, \
         keyentry with boxes fc rgb '#4477aa' fs solid title 'compute (micro-batch)', \
         keyentry with boxes fc rgb '#ee6677' fs solid title 'waiting (bubble)', \
         keyentry with boxes fc rgb '#999999' fs solid title 'communication', \
         keyentry with boxes fc rgb '#228833' fs solid title 'optimizer'
}
unset multiplot
