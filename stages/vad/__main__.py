from bus.stage import main
from stages.vad.stage import Vad

main(Vad)
