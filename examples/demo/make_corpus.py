#!/usr/bin/env python3
"""Generates the embedded demo data (original text written for this project, from templates):
corpus.txt (documents = blocks of lines separated by blank lines), dict.txt (jieba format: word freq pos),
entities.txt and events.txt (knowledge lexicons). Deterministic: same output on every run.

Usage: python3 make_corpus.py [OUT_DIR]   (default: this directory)
"""
import os
import random
import sys

PEOPLE = ["张伟", "李娜", "王芳", "刘洋", "陈静", "杨帆", "赵磊", "黄丽", "周杰", "吴敏", "徐明", "孙悦",
          "马超", "朱琳", "胡军", "郭晨", "林涛", "何雪", "高远", "罗晓"]
CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "南京", "武汉", "西安", "重庆", "苏州", "厦门",
          "青岛", "昆明", "长沙", "天津"]
PLACES = ["公园", "图书馆", "博物馆", "菜市场", "电影院", "体育馆", "咖啡馆", "海边", "山顶", "湖边", "老街", "商场"]
COMPANIES = ["星河科技", "青山食品", "明月书店", "远航物流", "晨光文具", "绿野农场", "蓝海旅行社", "百味餐厅"]
FOODS = ["饺子", "面条", "米饭", "包子", "火锅", "水果", "蛋糕", "豆浆", "馄饨", "烤鸭"]
EVENTS = ["开会", "旅行", "参观", "庆祝", "比赛", "演出", "搬家", "毕业", "考试", "讨论", "培训", "聚会"]
WEATHER = ["晴天", "下雨", "多云", "下雪", "刮风"]
SEASONS = ["春天", "夏天", "秋天", "冬天"]
FEELINGS = ["开心", "高兴", "满意", "轻松", "紧张", "感动", "兴奋", "平静"]
HOBBIES = ["看书", "跑步", "游泳", "画画", "唱歌", "下棋", "做饭", "种花", "拍照", "弹琴", "写字", "钓鱼"]
TIMES = ["今天早上", "昨天下午", "上周末", "这个月初", "去年冬天", "前天晚上", "明天上午", "每天傍晚"]
FAMILY = ["妈妈", "爸爸", "奶奶", "爷爷", "姐姐", "弟弟", "朋友", "同事", "邻居", "老师"]

SENTENCES = [
    "{time}，{p}和{f}一起去{place}{hobby}。",
    "{city}的{season}常常是{weather}，街上的行人不多。",
    "{p}在{company}工作了三年，同事们都很喜欢{pron}。",
    "为了准备{event}，{p}提前两个小时就到了{place}。",
    "{f}做的{food}特别好吃，{p}一口气吃了两碗。",
    "{p}说：“下次我们去{city}{event}吧！”",
    "大家在{place}{event}，气氛非常热烈。",
    "{p}觉得很{feel}，因为今天的{event}进行得很顺利。",
    "{company}最近推出了新的服务，很多{city}的顾客前来咨询。",
    "{time}{city}{weather}，{p}只好在家里{hobby}。",
    "{p}每周都会花一些时间{hobby}，{pron}说这样可以放松心情。",
    "去{city}的火车上，{p}认识了一位喜欢{hobby}的{f2}。",
    "{f}问{p}：“你明天还要去{place}吗？”",
    "{p}把{food}分给了{f}和{f2}，大家都很{feel}。",
    "这次{event}结束以后，{p}给{company}写了一封感谢信。",
    "{p}打算{season}的时候带{f}去{city}看看。",
    "在{place}门口，{p}遇到了多年不见的{f2}。",
    "{p}的{f}住在{city}，每年{season}都会来看{pron}。",
    "{p}认为{hobby}最重要的是坚持，而不是天赋。",
    "听说{city}新开了一家{place}，{p}马上约了{f}周末一起去。",
]


def sentence(rng, p):
    tmpl = rng.choice(SENTENCES)
    return tmpl.format(time=rng.choice(TIMES), p=p, f=rng.choice(FAMILY), f2=rng.choice(FAMILY),
                       place=rng.choice(PLACES), hobby=rng.choice(HOBBIES), city=rng.choice(CITIES),
                       season=rng.choice(SEASONS), weather=rng.choice(WEATHER), company=rng.choice(COMPANIES),
                       event=rng.choice(EVENTS), food=rng.choice(FOODS), feel=rng.choice(FEELINGS),
                       pron=rng.choice(["他", "她"]))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    rng = random.Random(20240501)
    docs = []
    for _ in range(700):
        p = rng.choice(PEOPLE)
        paragraphs = []
        for _ in range(rng.randint(1, 3)):
            paragraphs.append("".join(sentence(rng, p) for _ in range(rng.randint(2, 4))))
        docs.append("\n".join(paragraphs))
    with open(os.path.join(out, "corpus.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(docs) + "\n")
    words = {}
    for w in PEOPLE:
        words[w] = (300, "nr")
    for w in CITIES:
        words[w] = (800, "ns")
    for w in COMPANIES:
        words[w] = (200, "nt")
    for w in EVENTS + HOBBIES:
        words.setdefault(w, (500, "v"))
    for w in PLACES + FOODS + WEATHER + SEASONS + FAMILY:
        words.setdefault(w, (600, "n"))
    for w in FEELINGS:
        words.setdefault(w, (400, "a"))
    for w in ["今天", "昨天", "前天", "明天", "早上", "下午", "晚上", "上午", "傍晚", "周末", "每天", "去年",
              "一起", "常常", "街上", "行人", "工作", "同事", "喜欢", "准备", "提前", "小时", "特别", "好吃",
              "下次", "我们", "大家", "气氛", "非常", "热烈", "觉得", "因为", "进行", "顺利", "最近", "推出",
              "服务", "顾客", "前来", "咨询", "只好", "家里", "每周", "时间", "可以", "放松", "心情", "火车",
              "认识", "一位", "还要", "结束", "以后", "感谢信", "打算", "时候", "看看", "门口", "遇到", "多年",
              "不见", "每年", "认为", "重要", "坚持", "而不是", "天赋", "听说", "新开", "一家", "马上", "这样",
              "一口气", "三年", "两碗", "两个", "这次", "写了", "一封", "不多", "这个", "月初", "一些"]:
        words.setdefault(w, (1000, "x"))
    for ch in "的了是在和都很也就会吧吗说去来看把给到有个着人家这那我你他她它们":
        words.setdefault(ch, (3000, "x"))
    with open(os.path.join(out, "dict.txt"), "w", encoding="utf-8") as f:
        for w, (freq, pos) in sorted(words.items()):
            f.write("%s %d %s\n" % (w, freq, pos))
    with open(os.path.join(out, "entities.txt"), "w", encoding="utf-8") as f:
        f.write("# demo entity lexicon: people, cities, companies\n")
        for w in PEOPLE + CITIES + COMPANIES:
            f.write(w + "\n")
    with open(os.path.join(out, "events.txt"), "w", encoding="utf-8") as f:
        f.write("# demo event lexicon\n")
        for w in EVENTS:
            f.write(w + "\n")


if __name__ == "__main__":
    main()
