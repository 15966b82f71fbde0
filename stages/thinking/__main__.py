from bus.stage import main
from stages.thinking.stage import Thinking

main(Thinking)
